import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_line():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n```", readme)
    assert len(blocks) == 2, "the Quick start has exactly two command lines"
    marker = readme.index("<!-- test-line -->")
    test_line = re.search(r"```sh\n(.+?)\n```", readme[marker:]).group(1)
    assert test_line == blocks[1] and "[qt,test]" in test_line and "pytest" in test_line
    assert "<!-- test-line -->" in (ROOT / ".ci/run").read_text()
