"""medvision-bench: can vision-language models measure medical images?

Build the MedVision samples from public images and masks, evaluate VLMs on detection,
tumour/lesion size and angle/distance, score, report and fine-tune.
"""

__version__ = "0.1.0"
