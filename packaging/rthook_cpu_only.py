"""PyInstaller runtime hook of the CPU-only bundle (``packaging/build.sh --cpu-only``).

That bundle keeps only the CUDA libraries torch needs to be imported, not those a GPU op loads, so
the GPU is hidden before torch starts and the GPU check reports a CPU-only build.
"""
import os

os.environ["SEGSTUDIO_CPU_ONLY"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
