"""The dataset card (``README.md``) of an exported HF folder: YAML header, sources, provenance.

The YAML header is what the Hub and ``datasets`` read: ``configs`` (split -> Parquet files),
``dataset_info.features`` (the ``image`` column is an ``image`` feature), ``license`` and tags.
The body names each source dataset's licence and citation as the catalog states them (they
bind whoever uses the data), and the build's provenance from its manifest.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from medvision.store.manifest import BuildManifest

__all__ = ["dataset_card", "hub_license"]

_CC = re.compile(r"^CC[ -]?(BY(?:[ -](?:NC|SA|ND))*)[ -]?(\d\.\d)$", re.IGNORECASE)


def hub_license(licences: list[str]) -> str:
    """The Hub ``license`` id of the sources: one Creative Commons licence, else ``other``.

    Example:
        >>> hub_license(["CC BY-NC-SA 4.0"]), hub_license(["CC BY 4.0", "CC BY-SA 4.0"])
        ('cc-by-nc-sa-4.0', 'other')
    """
    found = {_CC.match(" ".join(text.split())) for text in licences}
    if len(licences) < 1 or None in found:
        return "other"
    ids = {f"cc-{m.group(1).lower().replace(' ', '-')}-{m.group(2)}" for m in found if m}
    return ids.pop() if len(ids) == 1 else "other"


def _sources(manifest: BuildManifest) -> list[tuple[str, str, str, str]]:
    """(name, title, licence, citation) per source dataset; unknown ones say so."""
    from medvision.catalog.registry import catalog

    specs = catalog()
    out = []
    for name in manifest.datasets:
        spec = specs.get(name)
        if spec is None:
            out.append(
                (name, name, "not in the built-in catalog: see the source", "not in the catalog")
            )
        else:
            title = f"[{spec.title}]({spec.homepage})" if spec.homepage else spec.title
            out.append(
                (name, title, " ".join(spec.licence.split()), " ".join(spec.citation.split()))
            )
    return out


def dataset_card(
    manifest: BuildManifest,
    features: Any,
    counts: dict[str, tuple[int, int]],
    *,
    protocol: str,
) -> str:
    """The ``README.md`` of an exported folder.

    Args:
        manifest: The build manifest.
        features: The ``datasets.Features`` of the Parquet files.
        counts: ``(rows, Arrow bytes)`` per split.
        protocol: The protocol whose rendering the images follow.

    Returns:
        Markdown with a YAML front matter.
    """
    sources = _sources(manifest)
    header: dict[str, Any] = {
        "license": hub_license([s[2] for s in sources]),
        "pretty_name": f"MedVision build {manifest.build_id}",
        "tags": ["medical", "medical-imaging", "measurement", "medvision-bench"],
        "task_categories": ["image-text-to-text"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"} for split in counts
                ],
            }
        ],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [
                {"name": s, "num_bytes": nbytes, "num_examples": n}
                for s, (n, nbytes) in counts.items()
            ],
        },
    }
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    opts = manifest.options
    lines = [
        "---",
        front.rstrip(),
        "---",
        "",
        f"# MedVision build {manifest.build_id}",
        "",
        "Image-annotation samples for the MedVision quantitative medical-imaging benchmark, made",
        "by [medvision-bench](https://pypi.org/project/medvision-bench/): one row per sample",
        "(detection box, tumour/lesion axes, or landmark angle/distance) with its exact physical",
        "ground truth, and the image itself in the `image` column.",
        "",
        "## Images",
        "",
        "`image` is the 8-bit PNG a model is shown under medvision's default configuration",
        f"(protocol `{protocol}`), before the model's own resize; `image_hw` is its size",
        "(rows, cols) and `spacing_mm_rc` its pixel spacing in mm (row, col). Boxes (`box_rc`)",
        "and points (`points_rc`) are in array pixels, origin top-left; `target` holds the",
        "ground truth in the benchmark's units (detection: relative corners, origin lower-left).",
        "",
        "## Use",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("path/to/this/folder")  # or the Hub repo id',
        'ds["test"][0]["image"]  # a PIL image',
        "```",
        "",
        'Publish it with `ds.push_to_hub("user/name")` or',
        "`huggingface-cli upload user/name path/to/this/folder --repo-type dataset`",
        "(both need the network and a token).",
        "",
        "## Splits",
        "",
        "| split | samples |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, (n, _) in counts.items()],
        "",
        "## Source datasets, licences and citations",
        "",
        "Every row comes from one source dataset (column `dataset`); its licence applies.",
        "",
    ]
    for name, title, licence, citation in sources:
        lines += [f"### {name}: {title}", "", f"- Licence: {licence}", f"- Cite: {citation}", ""]
    lines += [
        "## Provenance",
        "",
        f"- build id: `{manifest.build_id}` (created {manifest.created_utc})",
        f"- medvision-bench {manifest.medvision_version}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items())),
        f"- seed {manifest.seed}; stored rendering `{opts.get('render', 'n/a')}`; "
        f"ground truth `{getattr(manifest, 'annotation', None) or 'n/a'}`",
        f"- {manifest.n_samples} samples, {manifest.n_images} distinct images, "
        f"{len(manifest.skipped)} source case(s) skipped",
        "- the full build manifest (options, counts, skipped cases and why): "
        "`medvision_build.json`",
        "",
    ]
    return "\n".join(lines)
