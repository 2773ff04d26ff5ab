"""Task prompts and image policies.

One renderer (:func:`render_prompt`) serves evaluation and training; image policies
(:class:`ImagePolicy`) predict the size a model's processor gives an image, so that the pixel
spacing a prompt states is the spacing of the image the model sees.
"""

from medvision.tasks.image_policy import POLICIES, ImagePolicy, get_policy, smart_resize
from medvision.tasks.prompts import PromptStyle, prompt_hash, render_prompt

__all__ = [
    "POLICIES",
    "ImagePolicy",
    "PromptStyle",
    "get_policy",
    "prompt_hash",
    "render_prompt",
    "smart_resize",
]
