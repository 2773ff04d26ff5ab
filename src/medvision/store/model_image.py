"""The one function that gives the image a model is shown for a sample.

Training export (``medvision export sft``), the HF dataset (``to_hf``, ``medvision export hf``)
read a sample's image through :func:`model_image`, and evaluation through the same
:meth:`~medvision.store.BuiltDataset.image` with the same rule, so all of them show the same
pixels. The store keeps slices losslessly; the image is rendered here by the rendering rule of
the ``protocol`` (:data:`medvision.volumes.render.PROTOCOL_RENDERING`: ``paper-v1`` min-max,
``official`` and ``strict`` the medvision-bm 1.2.1 CT windows and percentiles).
"""

from __future__ import annotations

from medvision.schema import Sample
from medvision.store.reader import BuiltDataset
from medvision.volumes.render import rendering_for_protocol

__all__ = ["DEFAULT_PROTOCOL", "model_image", "model_rendering"]

#: The protocol of the default configuration (:class:`medvision.tasks.config.EvalConfig`).
DEFAULT_PROTOCOL = "paper-v1"


def model_rendering(protocol: str = DEFAULT_PROTOCOL) -> str:
    """The rendering rule of ``protocol`` (e.g. ``"minmax"`` for ``paper-v1``)."""
    return rendering_for_protocol(protocol)


def model_image(
    dataset: BuiltDataset, sample: Sample, *, protocol: str = DEFAULT_PROTOCOL
) -> bytes:
    """PNG bytes of the 8-bit image a model is shown for ``sample`` under ``protocol``.

    Args:
        dataset: The built dataset holding the sample.
        sample: The sample.
        protocol: The protocol whose rendering rule applies.

    Returns:
        PNG file bytes (before the model's own resize, which its processor does).

    Raises:
        KeyError: If the dataset lacks the sample's image (the message names the root).
        ValueError: If the protocol is unknown.
    """
    return dataset.image(sample, model_rendering(protocol))
