"""The one function that gives the image a model is shown for a sample.

Training export (``medvision export sft``), the HF dataset (``to_hf``, ``medvision export hf``)
read a sample's image through :func:`model_image`, so all of them show the same pixels as
evaluation does. Today a build stores the 8-bit PNG a model sees under the build's rendering
and this returns it as stored; where rendering becomes a property of the protocol (the store
keeping slices losslessly), this is the one place to render per ``protocol``.
"""

from __future__ import annotations

from medvision.schema import Sample
from medvision.store.reader import BuiltDataset

__all__ = ["DEFAULT_PROTOCOL", "model_image"]

#: The protocol of the default configuration (:class:`medvision.tasks.config.EvalConfig`).
DEFAULT_PROTOCOL = "paper-v1"


def model_image(
    dataset: BuiltDataset, sample: Sample, *, protocol: str = DEFAULT_PROTOCOL
) -> bytes:
    """PNG bytes of the 8-bit image a model is shown for ``sample`` under ``protocol``.

    Args:
        dataset: The built dataset holding the sample.
        sample: The sample.
        protocol: The protocol whose rendering applies (the stored rendering today, the
            same for every protocol).

    Returns:
        PNG file bytes (before the model's own resize, which its processor does).

    Raises:
        KeyError: If the dataset lacks the sample's image (the message names the root).
    """
    del protocol  # one stored rendering per build today
    return dataset.image(sample.image_key)
