"""Validated description of a source dataset: one YAML file per dataset, one :class:`DatasetSpec`.

Facts about a dataset (labels, landmarks, measurements, layout, licence) live in data, not in
code. A spec holds one or more tasks; a task is one image folder with its masks and/or
landmarks, one modality and one label table, as in the official ``benchmark_plan["tasks"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from medvision.catalog.download_spec import DownloadSpec
from medvision.catalog.layout_models import FcsvLayout, LidcLayout, VerseLayout
from medvision.schema import LabelKind, Plane

Modality = Literal["MRI", "CT", "ultrasound", "X-ray", "PET"]
PlaneCode = Literal["S", "C", "A"]

_PLANES: dict[str, Plane] = {p.letter: p for p in Plane}


def _unique_planes(planes: list[PlaneCode]) -> list[PlaneCode]:
    if len(planes) != len(set(planes)):
        raise ValueError(f"planes repeat a code: {planes}")
    return planes


#: Plane codes without repeats (a repeat would plan every slice twice, with equal sample ids).
Planes = Annotated[list[PlaneCode], AfterValidator(_unique_planes)]


class SpecError(ValueError):
    """A dataset spec is invalid; the message names the spec file and the offending field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Model):
    """One label value of a mask.

    Attributes:
        id: Integer value in the mask (> 0).
        name: Name used in prompts (e.g. ``"left kidney"``).
        kind: organ | tumour | lesion | other; tumour/lesion drive the anatomy vs T/L split.
        group: Parent class for grouped reports: the official ``label_map_regroup`` parent
            class of ``name`` (e.g. ``"Kidney"``, ``"Kidney Tumor/Lesion"``, ``"Others"``), so
            detection groups pool across datasets exactly as the official summaries do.
        structure: File stem of this label's own binary mask where a layout ships one mask
            per structure (TotalSegmentator ``segmentations/<structure>.nii.gz``).
        group_1_2_1: The medvision-bm 1.2.1 ``label_map_regroup`` parent class where it
            differs from ``group`` (the GitHub c221615 class the paper's tables use): the Knee
            split (``"Knee Bone"``, ``"Knee Soft Tissue"``). Used under the ``official`` and
            ``strict`` protocols (reference official-versions.md section 6).
        tl_group: The official ``label_map_rename`` value of a tumour/lesion label where it
            differs from ``name`` (T/L groups pool synonyms: ``"liver cancer"`` ->
            ``"liver tumor"``); the same in c221615 and 1.2.1.
    """

    id: int = Field(gt=0)
    name: str = Field(min_length=1)
    kind: LabelKind
    group: str = Field(min_length=1)
    structure: str | None = None
    group_1_2_1: str | None = None
    tl_group: str | None = None


class DetectionSpec(_Model):
    """Detection samples: one box per 4-connected component per label per slice.

    Attributes:
        labels: Label ids that get boxes.
        planes: Planes built.
        single_instance: Apply the official loader's single-instance filter.
        min_side_px: Smallest box side kept by that filter (pixels).
        official_task: Official ``BoxSize``/``BoxCoordinate`` task number (``"01"``...), if
            the official benchmark has this task.
        official_planes: Planes for which the official code ships an evaluation task YAML
            (official-eval-protocol section 9); the rest exist as data only.
    """

    labels: list[int] = Field(min_length=1)
    planes: Planes = ["S", "C", "A"]
    single_instance: bool = True
    min_side_px: int = 10
    official_task: str | None = Field(default=None, pattern=r"^\d{2}$")
    official_planes: list[PlaneCode] = []


class OfficialTLTask(_Model):
    """One official ``TumorLesionSize`` task: one target label of one image source.

    Attributes:
        label: Target label id (must be in the task's ``tl.labels``).
        task: Official task number, e.g. ``"03"``.
        planes: Planes with an official evaluation task YAML.
    """

    label: int
    task: str = Field(pattern=r"^\d{2}$")
    planes: list[PlaneCode] = []


class TumourLesionSpec(_Model):
    """Tumour/lesion size samples: ellipse major/minor axes of each lesion component.

    Attributes:
        labels: Target label ids (tumour or lesion kinds).
        planes: Planes built.
        single_instance: Drop slices with more than one component of the label.
        official: The official T/L tasks these labels correspond to (one per target label).
    """

    labels: list[int] = Field(min_length=1)
    planes: Planes = ["S", "C", "A"]
    single_instance: bool = True
    official: list[OfficialTLTask] = []


class MeasurementSpec(_Model):
    """A distance (two landmarks) or an angle (two lines of two landmarks each).

    Attributes:
        key: Stable key, e.g. ``"L-1-2"`` or ``"A-L_1_2-L_3_4"`` (official naming).
        type: ``"distance"`` (mm) or ``"angle"`` (acute, unsigned, degrees).
        points: Landmark keys: 2 for a distance, 4 for an angle (line 1 p1, p2, line 2 p1, p2).
        name: Clinical name used in the prompt; ``""`` gives the unnamed prompt form.
        plane: Plane of the image shown; its slice is the one holding the first point.
    """

    key: str = Field(min_length=1)
    type: Literal["distance", "angle"]
    points: list[str]
    name: str = ""
    plane: PlaneCode = "S"

    @model_validator(mode="after")
    def _check_points(self) -> MeasurementSpec:
        need = 2 if self.type == "distance" else 4
        if len(self.points) != need:
            raise ValueError(
                f"measurement {self.key!r}: a {self.type} needs {need} points, "
                f"found {len(self.points)}"
            )
        return self


# ----------------------------------------------------------------------------- layouts
# One model per on-disk layout family; ``TaskSpec.layout`` is a union discriminated by
# ``kind``. The readers (``medvision.catalog.readers``) turn each into cases and volumes.


class FoldersLayout(_Model):
    """Flat folders: ``<image_folder>/<prefix><case><suffix>``, masks/landmarks alike.

    ``image_folder`` may be a glob (``"HNTSMRG24_train/*/midRT"``); every folder it matches
    is scanned. Images may be NIfTI or, through SimpleITK, MHA/MHD/NRRD.

    Attributes:
        exclude: ``fnmatch`` patterns of image file names to ignore (``"*_gt.nii.gz"`` when
            masks sit beside images; ``"._*"`` for macOS resource forks shipped in archives).
        masks_beside_images: Masks live in the image's own folder (``mask_folder`` unused
            except to say that the task has masks; set it to ``"."``).
        dicom_series: Each case is a sub-folder of ``image_folder`` holding one DICOM series
            (read with SimpleITK); ``image_suffix`` is then ignored.
    """

    kind: Literal["folders"] = "folders"
    exclude: list[str] = ["._*"]
    masks_beside_images: bool = False
    dicom_series: bool = False


class NnunetLayout(_Model):
    """nnU-Net / Medical Segmentation Decathlon: ``imagesTr``/``labelsTr`` + ``dataset.json``.

    Handles nnU-Net v2 (one file per channel, ``<case>_<CCCC><file_ending>``, ``labels``
    name -> id, ``channel_names``) and MSD / nnU-Net v1 (``training`` list, one 4D file per
    case whose last axis holds the channels, ``labels`` id -> name, ``modality``).

    Attributes:
        channel: Channel index (``_0000`` suffix, or index along the 4th axis of a 4D file).
        dataset_json: Path of ``dataset.json`` relative to the data root; ``None`` means the
            parent folder of ``image_folder``.
    """

    kind: Literal["nnunet"]
    channel: int = Field(default=0, ge=0)
    dataset_json: str | None = None


class CaseFoldersLayout(_Model):
    """One folder per case: ``<image_folder>/<case>/<image_file>`` (AbdomenAtlas, generic).

    File names are templates where ``{case}`` is the case folder's name.

    Attributes:
        case_glob: Pattern of case folder names.
        image_file: Image file template, e.g. ``"ct.nii.gz"`` or ``"{case}_T2.nii.gz"``.
        mask_file: Mask file template, or ``None`` for no masks.
        landmark_file: Landmark JSON template, or ``None``.
    """

    kind: Literal["case_folders"]
    case_glob: str = "*"
    image_file: str
    mask_file: str | None = None
    landmark_file: str | None = None


class BratsLayout(_Model):
    """BraTS 2023-2024 case folders: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz``.

    Attributes:
        sequence: MRI sequence suffix: t1c (T1 post-contrast), t1n (native T1), t2f
            (T2-FLAIR), t2w (T2).
        mask: Mask suffix: ``"seg"`` (GLI, MET, PED, SSA) or ``"gtv"`` (MEN-RT).
        separator: Between case id and suffix: ``"-"`` (GLI, MET, PED) or ``"_"`` (MEN-RT).
    """

    kind: Literal["brats"]
    sequence: Literal["t1c", "t1n", "t2f", "t2w"]
    mask: str = "seg"
    separator: Literal["-", "_"] = "-"
    case_glob: str = "BraTS*"


class Kits23Layout(_Model):
    """KiTS23: ``<image_folder>/case_00000/imaging.nii.gz`` + ``segmentation.nii.gz``."""

    kind: Literal["kits23"]
    case_glob: str = "case_*"


class AmosLayout(_Model):
    """AMOS22 release: ``<image_folder>/images{Tr,Va}/amos_0001.nii.gz`` + ``labels{Tr,Va}``.

    CT and MRI share the folders; they are told apart by case number (the official
    downloader puts ``amos_<507`` into CT and the rest into MRI).

    Attributes:
        subsets: Sub-folder suffixes scanned (``imagesTs`` has no labels).
        min_case_number: Smallest case number of this task (inclusive).
        max_case_number: Largest case number of this task (inclusive).
    """

    kind: Literal["amos"]
    subsets: list[str] = ["Tr", "Va"]
    min_case_number: int = 0
    max_case_number: int = 10**6


class TotalSegLayout(_Model):
    """TotalSegmentator: ``<case>/ct.nii.gz`` + ``<case>/segmentations/<structure>.nii.gz``.

    The per-structure binary masks are merged into one label map using each label's
    ``structure`` (its file stem); a voxel claimed by two structures keeps the larger id.

    Attributes:
        case_glob: Pattern of case folder names (``s0000``...).
        image_file: ``"ct.nii.gz"`` (CT release) or ``"mri.nii.gz"`` (MR release).
        segmentations_folder: Folder of the per-structure masks inside a case folder.
        structure_suffix: File name ending of a structure mask (PDDCA: ``".nrrd"``).
        missing_structures: ``"error"`` (a missing file is a damaged download) or ``"skip"``
            (the release omits absent structures, as PDDCA does: the label stays empty).
    """

    kind: Literal["totalseg"]
    case_glob: str = "s*"
    image_file: str = "ct.nii.gz"
    segmentations_folder: str = "segmentations"
    structure_suffix: str = ".nii.gz"
    missing_structures: Literal["error", "skip"] = "error"


class CamusLayout(_Model):
    """CAMUS (2023 NIfTI release): ``patient0001/patient0001_2CH_half_sequence.nii.gz``.

    Each patient folder gives one case per view (case id ``patient0001_2CH``); the mask is the
    same name with ``_gt``. Sequences are 2D+t volumes whose third axis is time (frames).

    Attributes:
        views: Views read (``"2CH"``, ``"4CH"``).
        sequence: ``"half_sequence"`` (2D+t, ED to ES), ``"ED"`` or ``"ES"`` (single frames).
    """

    kind: Literal["camus"]
    views: list[Literal["2CH", "4CH"]] = ["2CH", "4CH"]
    sequence: Literal["half_sequence", "ED", "ES"] = "half_sequence"
    case_glob: str = "patient*"


class CephLayout(_Model):
    """ISBI 2015 cephalometric release: ``RawImage/*/NNN.bmp`` + two annotators' txt files.

    Each txt file holds the landmarks as ``x,y`` lines (x = column, y = row, 1-based pixels).
    Images become ``1 x W x H`` volumes exactly as the official converter does (flip rows,
    swap axes, pseudo voxel ``pixel_mm`` isotropic), landmarks follow the same transform.

    Attributes:
        annotator: ``"senior"`` (the official choice), ``"junior"``, or ``"mean"`` of both.
        annotation_folder: Folder (relative to the root) of the annotator sub-folders.
        senior_folder: Senior annotator's sub-folder.
        junior_folder: Junior annotator's sub-folder.
        n_landmarks: Landmark lines read from the top of each file (P1..Pn).
        pixel_mm: Pseudo pixel size in mm (0.1 mm, as the official).
    """

    kind: Literal["ceph"]
    annotator: Literal["senior", "junior", "mean"] = "senior"
    annotation_folder: str = "AnnotationsByMD"
    senior_folder: str = "400_senior"
    junior_folder: str = "400_junior"
    n_landmarks: int = Field(default=19, gt=0)
    pixel_mm: float = Field(default=0.1, gt=0)


class FetaLayout(_Model):
    """FeTA 2.4 (BIDS) biometry: T2w images, ``*_meas.nii.gz`` landmark masks, transforms.

    Case ``sub-001_rec-mial``: image ``<image_folder>/sub-001/anat/<case>_T2w.nii.gz``,
    landmarks ``<image_folder>/<biometry_folder>/sub-001/anat/<case>_meas.nii.gz``, where
    label ``k`` marks exactly two voxels: the endpoints of the ``k``-th distance
    (``P(2k-1)``, ``P(2k)``). With
    ``realign`` the image is resampled into the measurement space with the subject's ITK
    transform (``<case>*.txt`` beside the meas file), as the official preparation does.

    Attributes:
        biometry_folder: Root of the biometry derivatives, relative to the BIDS root
            (``image_folder``).
        realign: Resample the image with the transform (needs SimpleITK).
        order_axes: Per distance, the RAS+ axis along which its first point has the larger
            index (official FeTA ordering: CC anterior, vermis superior, diameters right).
        exclude_cases: Case ids left out (official list of unusable cases).
    """

    kind: Literal["feta"]
    biometry_folder: str = "derivatives/biometry"
    realign: bool = True
    order_axes: list[int] = [1, 2, 0, 0, 0]
    exclude_cases: list[str] = []


Layout = Annotated[
    FoldersLayout
    | NnunetLayout
    | CaseFoldersLayout
    | BratsLayout
    | Kits23Layout
    | AmosLayout
    | TotalSegLayout
    | CamusLayout
    | CephLayout
    | FetaLayout
    | VerseLayout
    | FcsvLayout
    | LidcLayout,
    Field(discriminator="kind"),
]
LayoutKind = Literal[
    "folders",
    "nnunet",
    "case_folders",
    "brats",
    "kits23",
    "amos",
    "totalseg",
    "camus",
    "ceph",
    "feta",
    "verse",
    "fcsv",
    "lidc",
]

#: Layouts whose masks come with the case, whatever ``mask_folder`` says.
_MASKED_LAYOUTS = frozenset({"brats", "kits23", "amos", "totalseg", "camus", "verse", "lidc"})
#: Layouts whose landmarks come with the case.
_LANDMARK_LAYOUTS = frozenset({"ceph", "feta", "verse"})


class OfficialIds(_Model):
    """How a task maps to the official task numbering (per family, local to the dataset).

    Attributes:
        ad: Official ``BiometricsFromLandmarks`` task number.
        ad_planes: Planes with an official A/D evaluation task YAML.
    """

    ad: str | None = Field(default=None, pattern=r"^\d{2}$")
    ad_planes: list[PlaneCode] = []


class PromptTextSpec(_Model):
    """Which parts of a task's prompt text the reference gives verbatim.

    The official prompt pastes ``image_description`` and the ``labels_map`` /
    ``landmarks_map`` names of the official dataset package, which is not in the official
    code; only where the reference quotes them is our text the paper's
    (:func:`medvision.tasks.prompt_check.prompt_verified`).

    Attributes:
        description: ``image_description`` is the official text.
        names: Every label and landmark name of the task is the official string.
    """

    description: bool = False
    names: bool = False


class TaskSpec(_Model):
    """One task of a dataset: an image source plus its annotations and task definitions.

    A task is what the official code calls one ``benchmark_plan["tasks"]`` entry of one
    image folder; its detection, tumour/lesion and angle/distance families map to the
    official per-family task numbers through ``detection.official_task``, ``tl.official``
    and ``official.ad``.

    Attributes:
        id: Our task id within the dataset (``"01"``...).
        modality: Imaging modality (official ``image_modality`` spelling family).
        image_description: Pasted verbatim into prompts.
        image_folder: Folder (relative to the data root; a glob for ``folders``) holding
            the images or, for case-folder layouts, the case folders.
        image_suffix, image_prefix: Image file name around the case id (``folders``).
        mask_folder, mask_suffix, mask_prefix: Mask location (``folders``, ``nnunet``,
            ``amos``); other layouts find the mask inside the case folder.
        landmark_folder, landmark_suffix: Landmark JSON location (``folders``).
        layout: How files are laid out on disk (see the layout models).
        labels, landmarks, measurements: Label table, landmark names (key -> name), and
            distance/angle definitions.
        detection, tl: Detection and tumour/lesion size families, if built.
        official: Official A/D task number.
        prompt_text: Which parts of the prompt text are verified against the reference.
    """

    id: str = Field(pattern=r"^\d{2}$")
    modality: Modality
    image_description: str = Field(min_length=1)
    image_folder: str
    image_suffix: str = ".nii.gz"
    image_prefix: str = ""
    mask_folder: str | None = None
    mask_suffix: str = ".nii.gz"
    mask_prefix: str = ""
    landmark_folder: str | None = None
    landmark_suffix: str = ".json"
    layout: Layout = FoldersLayout()
    labels: list[LabelSpec] = []
    landmarks: dict[str, str] = {}
    measurements: list[MeasurementSpec] = []
    detection: DetectionSpec | None = None
    tl: TumourLesionSpec | None = None
    official: OfficialIds = OfficialIds()
    prompt_text: PromptTextSpec = PromptTextSpec()

    @property
    def has_masks(self) -> bool:
        """Whether cases of this task come with a label mask."""
        if self.layout.kind in _MASKED_LAYOUTS:
            return True
        if self.layout.kind == "case_folders":
            return self.layout.mask_file is not None
        if self.layout.kind in _LANDMARK_LAYOUTS:
            return False
        return self.mask_folder is not None

    @property
    def has_landmarks(self) -> bool:
        """Whether cases of this task come with landmarks."""
        if self.layout.kind in _LANDMARK_LAYOUTS:
            return True
        if self.layout.kind == "case_folders":
            return self.layout.landmark_file is not None
        return self.landmark_folder is not None

    @model_validator(mode="after")
    def _check_refs(self) -> TaskSpec:
        ids = [lab.id for lab in self.labels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"task {self.id}: duplicate label ids {sorted(ids)}")
        names = [lab.name for lab in self.labels]
        if len(names) != len(set(names)):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"task {self.id}: duplicate label names {dup}")
        known = set(ids)
        for family, spec in (("detection", self.detection), ("tl", self.tl)):
            if spec is None:
                continue
            if not self.has_masks:
                raise ValueError(
                    f"task {self.id}: {family} needs masks (a mask_folder, or a layout "
                    f"with masks); layout {self.layout.kind!r} has none"
                )
            missing = sorted(set(spec.labels) - known)
            if missing:
                raise ValueError(f"task {self.id}: {family} refers to unknown label ids {missing}")
        if self.tl is not None:
            bad = [i for i in self.tl.labels if self.label(i).kind not in ("tumour", "lesion")]
            if bad:
                raise ValueError(f"task {self.id}: tl labels {bad} are not tumour/lesion labels")
            stray = sorted({o.label for o in self.tl.official} - set(self.tl.labels))
            if stray:
                raise ValueError(f"task {self.id}: tl.official refers to non-tl labels {stray}")
        if self.measurements and not self.has_landmarks:
            raise ValueError(f"task {self.id}: measurements need a landmark_folder")
        for m in self.measurements:
            unknown = [p for p in m.points if p not in self.landmarks]
            if unknown:
                raise ValueError(
                    f"task {self.id}: measurement {m.key!r} uses unknown landmarks {unknown}"
                )
        keys = [m.key for m in self.measurements]
        if len(keys) != len(set(keys)):
            raise ValueError(f"task {self.id}: duplicate measurement keys")
        if self.official.ad is not None and not self.measurements:
            raise ValueError(f"task {self.id}: official.ad is set but there are no measurements")
        if self.layout.kind == "totalseg" and self.labels:
            lacking = [lab.id for lab in self.labels if not lab.structure]
            if lacking:
                raise ValueError(
                    f"task {self.id}: layout 'totalseg' needs a 'structure' (mask file stem) "
                    f"for every label; missing for ids {lacking}"
                )
        if self.layout.kind == "feta" and self.measurements:
            n_pairs = len(self.layout.order_axes)
            need = {f"P{k}" for k in range(1, 2 * n_pairs + 1)}
            extra = sorted(set(self.landmarks) - need)
            if extra:
                raise ValueError(
                    f"task {self.id}: layout 'feta' yields landmarks P1..P{2 * n_pairs}; "
                    f"unknown {extra}"
                )
        return self

    def label(self, label_id: int) -> LabelSpec:
        """Return the label with this id.

        Raises:
            KeyError: If the task has no such label (message lists the known ids).
        """
        for lab in self.labels:
            if lab.id == label_id:
                return lab
        raise KeyError(
            f"task {self.id} has no label {label_id}; known: {[x.id for x in self.labels]}"
        )


class SplitSpec(_Model):
    """Deterministic train/test split at subject level.

    Attributes:
        test_fraction: Fraction of subjects in the test split.
        seed: Seed of the shuffle of the sorted subject list.
        subject_regex: Regex whose first group extracts the subject from a case id (cases of
            one subject never straddle the split); ``None`` means one subject per case.
    """

    test_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    seed: int = 1024
    subject_regex: str | None = None


class SourceSpec(_Model):
    """Where the raw files come from.

    Attributes:
        kind: ``generator`` (made offline), ``download`` (public URLs), ``manual`` (needs an
            account, a data-use agreement or a token; ``instructions`` says how).
        generator: Generator name for ``kind="generator"``.
        urls: Official source URLs (landing pages or archives).
        mirror: The official MedVision preprocessed mirror, if any (HF dataset id).
        instructions: What the user must do by hand.
        download: How ``medvision datasets download`` gets the files (the only place that
            says so); ``kind`` must agree (``manual`` iff the host is ``credentialed``).
    """

    kind: Literal["generator", "download", "manual"]
    generator: str | None = None
    urls: list[str] = []
    mirror: str = ""
    instructions: str = ""
    download: DownloadSpec | None = None

    @model_validator(mode="after")
    def _kind_matches_download(self) -> SourceSpec:
        if self.download is not None:
            manual = self.download.host == "credentialed"
            if self.kind == "generator" or manual != (self.kind == "manual"):
                raise ValueError(
                    f"source kind {self.kind!r} contradicts download host "
                    f"{self.download.host!r} (manual <=> credentialed)"
                )
        return self


class DatasetSpec(_Model):
    """A source dataset: provenance, layout, labels, landmarks, tasks."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = "1"
    title: str
    description: str
    licence: str
    citation: str
    homepage: str = ""
    source: SourceSpec
    split: SplitSpec = SplitSpec()
    tasks: list[TaskSpec] = Field(min_length=1)
    notes: list[str] = []
    unverified: list[str] = []

    @field_validator("tasks")
    @classmethod
    def _unique_task_ids(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        ids = [t.id for t in tasks]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate task ids {ids}")
        # Official task numbers are per family and must not repeat within the dataset.
        families: dict[str, list[str]] = {"detection": [], "tl": [], "ad": []}
        for t in tasks:
            if t.detection is not None and t.detection.official_task is not None:
                families["detection"].append(t.detection.official_task)
            if t.tl is not None:
                families["tl"] += [o.task for o in t.tl.official]
            if t.official.ad is not None:
                families["ad"].append(t.official.ad)
        for family, numbers in families.items():
            dup = sorted({n for n in numbers if numbers.count(n) > 1})
            if dup:
                raise ValueError(f"official {family} task numbers {dup} are used twice")
        return tasks

    def task(self, task_id: str) -> TaskSpec:
        """Return the task with this id.

        Raises:
            KeyError: If there is none (the message lists the known ids).
        """
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(f"{self.name} has no task {task_id}; known: {[t.id for t in self.tasks]}")


def plane_of(code: str) -> Plane:
    """Map a plane code (``"S"``, ``"C"``, ``"A"``) to :class:`~medvision.schema.Plane`."""
    return _PLANES[code]


def load_spec(path: str | Path) -> DatasetSpec:
    """Load and validate one dataset spec YAML (``yaml.safe_load``).

    Raises:
        SpecError: If the file is missing, not YAML, or fails validation; the message names
            the file and the field.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read dataset spec {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"dataset spec {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"dataset spec {p} must be a mapping, found {type(data).__name__}")
    try:
        return DatasetSpec.model_validate(data)
    except ValueError as exc:
        raise SpecError(f"invalid dataset spec {p}: {exc}") from exc
