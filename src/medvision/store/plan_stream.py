"""Read official ``benchmark_plan_*.json.gz`` files of any size with bounded memory.

Official detection plans run to hundreds of MB of JSON; ``json.load`` turns 500 MB of text
into several GB of Python objects. :func:`index_plan` streams the file once with ``ijson``
(its C backend where installed) and keeps only what a build needs up front: the dataset
info, each task's fields other than its case lists, and one :class:`CaseRef` per case
(task, case id, split, image file). With a ``spool`` path, each case's record is written
there as one JSON line and read back by :func:`load_case` when its job runs, so a build holds
one case at a time, not the plan.

The checks are those of :func:`~medvision.store.official_plan.load_plan`: a file that cannot
be read, is not JSON, or lacks ``tasks`` or a task's ``task_ID``/``train_cases``/
``test_cases`` raises :class:`~medvision.store.official_plan.PlanFormatError` naming the file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from medvision.schema import Split
from medvision.store.official_plan import OfficialCase, PlanFormatError, split_map

__all__ = ["CaseRef", "PlanIndex", "index_plan", "load_case"]

_CASE_LISTS = {"train_cases": "train", "test_cases": "test"}
_STARTS = {"start_map", "start_array"}
_ENDS = {"end_map", "end_array"}


@dataclass(frozen=True)
class CaseRef:
    """Where one case of one task lives in a spooled plan (picklable, small).

    Attributes:
        task_id: The task's ``task_ID``.
        case_id: The case's ``case_ID``.
        split: ``"train"`` for ``train_cases``, else ``"test"``.
        image_file: Image path relative to the dataset folder, as the plan gives it.
        offset: Byte offset of the case's JSON line in the spool (-1 when not spooled).
        length: Byte length of that line.
    """

    task_id: str
    case_id: str
    split: Split
    image_file: str
    offset: int = -1
    length: int = 0


@dataclass
class PlanIndex:
    """A plan without its case records: what a build needs before the cases run.

    Attributes:
        path: The plan file.
        dataset_info: The plan's ``dataset_info`` object.
        tasks: Each task's fields except ``train_cases``/``test_cases``, in plan order.
        cases: Every case of every task, train first within a task, in plan order.
        spool: The file holding one JSON line per case record, or ``None``.
    """

    path: Path
    dataset_info: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    cases: list[CaseRef] = field(default_factory=list)
    spool: Path | None = None

    def light_plan(self) -> dict[str, Any]:
        """The plan as a mapping without case lists (what each case job needs)."""
        return {"dataset_info": self.dataset_info, "tasks": self.tasks}

    def task_cases(self, task_id: str | None = None) -> list[CaseRef]:
        """The cases of one task (or all), in plan order.

        Raises:
            KeyError: If ``task_id`` is not a task of the plan.
        """
        if task_id is None:
            return list(self.cases)
        if all(str(t["task_ID"]) != task_id for t in self.tasks):
            known = [str(t["task_ID"]) for t in self.tasks]
            raise KeyError(f"official plan has no task {task_id!r}; tasks: {known}")
        return [c for c in self.cases if c.task_id == task_id]

    def split(self, task_id: str | None = None) -> dict[str, Split]:
        """``case_ID -> split``, as :func:`~medvision.store.official_plan.official_split`."""
        return split_map(self.task_cases(task_id))

    def split_by_image(self, task_id: str) -> dict[str, Split]:
        """Image file name (no folder) -> split for one task."""
        return {Path(c.image_file).name: c.split for c in self.task_cases(task_id)}


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


def _value(event: str, value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    """The whole JSON value that starts with ``(event, value)``, read from ``events``."""
    import ijson

    if event not in _STARTS:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for _, ev, val in events:
        builder.event(ev, val)
        if ev in _STARTS:
            depth += 1
        elif ev in _ENDS:
            depth -= 1
            if depth == 0:
                return builder.value
    raise PlanFormatError("the plan ends inside a value")


def index_plan(path: str | Path, spool: str | Path | None = None) -> PlanIndex:
    """Stream an official plan into a :class:`PlanIndex` (and its case records into ``spool``).

    Args:
        path: A ``benchmark_plan_*.json.gz`` (or plain ``.json``) file.
        spool: File to write the case records to (one JSON line each, overwritten), or
            ``None`` to keep only the case ids, splits and image files.

    Returns:
        The index. Memory holds the task fields and one small reference per case; peak memory
        is about the largest single case record.

    Raises:
        PlanFormatError: If the plan cannot be read or does not follow the published schema
            (the message names the file).
    """
    try:
        import ijson
    except ImportError as exc:  # a core dependency; the message says how to mend an old env
        raise ImportError('streaming official plans needs ijson: pip install "ijson>=3.2"') from exc

    p = Path(path)
    index = PlanIndex(path=p, spool=Path(spool) if spool is not None else None)
    out = index.spool.open("wb") if index.spool is not None else None
    try:
        with _open(p) as f:
            _walk(ijson.parse(f, use_float=True), index, out)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ijson.JSONError) as exc:
        raise PlanFormatError(
            f"cannot read official plan {p}: {type(exc).__name__}: {exc}"
        ) from exc
    except PlanFormatError as exc:
        raise PlanFormatError(f"official plan {p}: {exc}") from exc
    finally:
        if out is not None:
            out.close()
    return index


def _walk(events: Iterator[tuple[str, str, Any]], index: PlanIndex, out: IO[bytes] | None) -> None:
    """Fill ``index`` from the parser's events (one pass; case records go straight to ``out``)."""
    events = iter(events)
    seen_tasks = False
    task: dict[str, Any] | None = None
    # Small per-case facts until the task ends (its task_ID may come after its cases).
    pending: list[tuple[str, str, str, int, int]] = []  # (list name, case_id, file, offset, len)
    key = ""
    offset = 0
    for prefix, event, value in events:
        depth = prefix.count(".") if prefix else -1
        if prefix == "" and event == "map_key":
            key = value
        elif prefix == "dataset_info" and key == "dataset_info":
            info = _value(event, value, events)
            index.dataset_info = info if isinstance(info, dict) else {}
            key = ""
        elif prefix == "tasks":
            if event not in ("start_array", "end_array"):
                raise PlanFormatError("expected an object with a 'tasks' list")
            seen_tasks = True
        elif prefix == "tasks.item":
            if event == "start_map":
                task, pending = {}, []
            elif event == "map_key":
                key = value
            elif event == "end_map" and task is not None:
                _close_task(task, pending, index)
                task = None
            else:
                raise PlanFormatError(f"tasks[{len(index.tasks)}] is not an object")
        elif task is not None and depth == 2:  # tasks.item.<field>
            name = prefix.rsplit(".", 1)[1]
            if name in _CASE_LISTS:
                task[name] = True  # the list's records are spooled as they come
            else:
                task[name] = _value(event, value, events)
        elif task is not None and depth == 3 and prefix.endswith(".item"):
            name = prefix.split(".")[2]
            record = _value(event, value, events)
            if not isinstance(record, dict) or "case_ID" not in record:
                tid = task.get("task_ID", "?")
                raise PlanFormatError(f"task {tid}: a {name} entry lacks 'case_ID'")
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            if out is not None:
                out.write(line)
            file = str(record.get("image_file", ""))
            at = offset if out is not None else -1
            pending.append((name, str(record["case_ID"]), file, at, len(line)))
            offset += len(line)
        elif depth == 0 and event in _STARTS:
            _value(event, value, events)  # another top-level field: skip it whole
    if not seen_tasks:
        raise PlanFormatError("expected an object with a 'tasks' list")


def _close_task(
    task: dict[str, Any], pending: list[tuple[str, str, str, int, int]], index: PlanIndex
) -> None:
    """Check a finished task, then record its fields and its cases (train first)."""
    i = len(index.tasks)
    for required in ("task_ID", "train_cases", "test_cases"):
        if required not in task:
            raise PlanFormatError(f"tasks[{i}] lacks {required!r}")
    tid = str(task["task_ID"])
    index.tasks.append({k: v for k, v in task.items() if k not in _CASE_LISTS})
    for list_name, split in _CASE_LISTS.items():
        for name, case_id, image_file, offset, length in pending:
            if name != list_name:
                continue
            if not image_file:
                raise PlanFormatError(f"task {tid} case {case_id}: no 'image_file'")
            sp: Split = "train" if split == "train" else "test"
            index.cases.append(CaseRef(tid, case_id, sp, image_file, offset, length))


def load_case(index_spool: str | Path, ref: CaseRef) -> OfficialCase:
    """Read one case record back from the spool written by :func:`index_plan`.

    Raises:
        PlanFormatError: If the case was not spooled or the spool is damaged.
    """
    if ref.offset < 0:
        raise PlanFormatError(f"case {ref.case_id} of task {ref.task_id} was not spooled")
    with Path(index_spool).open("rb") as f:
        f.seek(ref.offset)
        line = f.read(ref.length)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PlanFormatError(f"plan spool {index_spool}: case {ref.case_id} is damaged") from exc
    return OfficialCase(ref.task_id, ref.case_id, ref.split, ref.image_file, record)
