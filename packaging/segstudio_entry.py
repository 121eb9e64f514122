"""Entry script for the PyInstaller bundle (``dist/segstudio/segstudio``)."""
import multiprocessing
import sys

from segstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
