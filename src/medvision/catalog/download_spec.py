"""The ``source.download`` block of a dataset YAML: how ``medvision datasets download`` gets it.

It is the single source of truth for downloads (:mod:`medvision.catalog.download` reads it,
nothing else): the host, the records or repositories on it, and what a user must do where
nothing can be fetched automatically.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DownloadHost", "DownloadSpec"]

DownloadHost = Literal["zenodo", "figshare", "huggingface", "github", "url", "credentialed"]


class DownloadSpec(BaseModel):
    """Where and how a dataset's raw files are downloaded.

    Attributes:
        host: ``zenodo`` / ``figshare`` (record or article ids), ``huggingface`` (dataset repo
            ids), ``github`` (``owner/repo``), ``url`` (file URLs, ``#sha256=<hex>`` or
            ``#md5=<hex>`` fragments checked), or ``credentialed`` (nothing is fetched; the
            steps are printed).
        ids: Record ids, article ids, repo ids or URLs, by host (landing pages for
            ``credentialed``).
        files: Only these file names (empty = every file of the record or repo).
        revision: Hugging Face / GitHub revision.
        private_link: figshare private-link token, if the article is shared that way.
        steps: A standard set of steps for credentialed hosts (``synapse``,
            ``grand-challenge``), printed before ``instructions``.
        instructions: What the user must do (credentialed sources) or run afterwards;
            ``{ids}``, ``{first}`` (last part of the first id) and ``{name}`` are filled in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: DownloadHost
    ids: list[str] = Field(min_length=1)
    files: list[str] = []
    revision: str = "main"
    private_link: str = ""
    steps: Literal["synapse", "grand-challenge"] | None = None
    instructions: str = ""

    @model_validator(mode="after")
    def _check(self) -> DownloadSpec:
        if self.host == "credentialed" and not (self.steps or self.instructions):
            raise ValueError("a credentialed download needs `steps` or `instructions`")
        if self.steps is not None and self.host != "credentialed":
            raise ValueError(f"`steps` is for credentialed downloads, not host {self.host!r}")
        return self
