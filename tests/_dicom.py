"""Writing small synthetic DICOM series for reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_series(
    folder: Path,
    volume: np.ndarray,
    spacing=(0.8, 0.7),
    thickness=6.0,
    step=8.0,
    slope=2.0,
    intercept=-100.0,
    shuffle_names: bool = True,
    patient: str = "PAT1",
    phases: int = 1,
    period_ms: float = 1000.0,
    prefix: str = "IM",
) -> list[Path]:
    """Write ``volume`` (N, H, W) as one MR series; stored = (value - intercept) / slope.

    File names are shuffled against the spatial order (when asked) so the
    reader must order by position. With ``phases`` > 1 the volume is
    ``(phases * positions, H, W)``, phase-major (a cine series: every position
    once per phase, trigger times spread over ``period_ms``, a few ms apart
    between positions as on a scanner), numbered in acquisition order.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    n = volume.shape[0]
    positions = n // phases
    order = list(reversed(range(n))) if shuffle_names else list(range(n))
    paths = []
    for file_index, k in enumerate(order):
        phase, z = divmod(k, positions)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.PatientID = patient
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = patient
        ds.SeriesNumber = 5
        ds.InstanceNumber = (n - k) if phases == 1 else (z * phases + phase + 1)
        if phases > 1:
            ds.TriggerTime = round(phase * period_ms / phases + 3.0 * z, 3)
        ds.ImagePositionPatient = [0.0, 0.0, float(z * step)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = thickness
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        frame = volume[k]
        stored = np.rint((frame - intercept) / slope).astype(np.int16)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = stored.tobytes()
        path = folder / f"{prefix}{file_index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
