"""Training and fine-tuning: data, augmentation, losses, the SAM loop, YOLO training."""
