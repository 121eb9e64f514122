"""Fine-tuning a segmentation model on a dataset's (corrected) labels.

torch lives here, Qt does not. The pieces:

* ``labels``   — which label file each image trains on (saved corrections, originals, reviewed only),
  the train/validation split and the dataset fingerprint (no torch);
* ``losses``   — cross-entropy, focal, soft multi-class Dice and CE + Dice, all honouring the ignore index;
* ``augment``  — joint image/mask augmentation with ``torchvision.transforms.v2`` and ``tv_tensors.Mask``;
* ``model``    — building a trainable module from a model spec (or a fresh architecture);
* ``loop``     — the training loop: schedule, mixed precision, validation, early stopping,
  checkpoints, resume, cancellation and progress events;
* ``output``   — the state dict + model card (with lineage) the run writes.

``segstudio train`` (``commands/train.py``) is the one entry point; the GUI runs it as a child process.
"""
