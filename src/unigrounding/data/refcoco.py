"""RefCOCO-family loader: COCO ``instances.json`` + a refs file.

Reads the real on-disk formats: RefCOCO / RefCOCO+ / RefCOCOg ``refs(<splitBy>).p``
(pickle; only with ``allow_pickle=True``, or converted once to JSON), the JSON form
of the same list, and gRefCOCO ``grefs(unc).json`` (``ann_id`` a list, ``[-1]`` for
no target). ShapesRef writes these formats, so this code is exercised by default.

Each referring sentence becomes one codec-neutral sample whose conversation is a
task template with ``{target:0}`` / ``{prompt:0}`` slots.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

from ..registry import DATASETS
from ..structures import SLOT_PATTERN, validate_box
from .annotations import AnnotationError, annotation_errors, read_json, record_name, require_file
from .base import GroundingDataset
from .coco import read_instances
from .tasks import NO_TARGET_ANSWER, REG_PROMPT_UNITS, TASK_TEMPLATES, TASK_UNITS


def read_refs(path: str | Path, allow_pickle: bool = False) -> list[dict]:
    """Load a refs list from JSON, or from a RefCOCO pickle when explicitly allowed."""
    path = Path(path)
    if path.suffix == ".p":
        require_file(path, "refs file")
        if not allow_pickle:
            raise AnnotationError(
                f"{path}: refusing to unpickle (pickle runs code). Pass allow_pickle=True if you "
                f"trust the file, or convert it once: unigrounding convert refcoco {path}"
            )
        with path.open("rb") as f:
            refs = pickle.load(f)
    else:
        refs = read_json(path, "refs file")
    if not isinstance(refs, list):
        raise AnnotationError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def convert_refs_pickle(path: str | Path, out: str | Path | None = None) -> Path:
    """Turn a trusted RefCOCO ``refs(*).p`` into the equivalent JSON, once."""
    refs = read_refs(path, allow_pickle=True)
    out = Path(out) if out else Path(path).with_suffix(".json")
    out.write_text(json.dumps(refs))
    return out


@DATASETS.register_module()
class RefCOCODataset(GroundingDataset):
    """Referring samples from ``data_root/instances.json`` + ``data_root/refs_file``.

    Args:
        data_root: folder holding the instances and refs files.
        refs_file: ``refs(unc).p`` / its JSON conversion / ``grefs(unc).json`` / ...
        split: value of the refs' ``split`` field to keep (``train``, ``val``, ``testA``...).
        task: one of :data:`TASK_TEMPLATES`.
        img_dir: image folder, relative to ``data_root``.
        turns_per_sample: group this many sentences of one image into one multi-turn
            conversation (training efficiency: the image is encoded once).
        max_samples: keep only the first ``max_samples`` samples (``None`` or 0: all).
        allow_pickle: permit reading a ``.p`` refs file.
    """

    def __init__(
        self,
        data_root: str,
        refs_file: str,
        split: str,
        task: str = "rec",
        img_dir: str = "images",
        instances_file: str = "instances.json",
        turns_per_sample: int = 1,
        max_samples: int | None = None,
        allow_pickle: bool = False,
        **kwargs,
    ) -> None:
        if task not in TASK_TEMPLATES:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_TEMPLATES)}")
        self.refs_file, self.split, self.task = refs_file, split, task
        self.img_dir, self.instances_file = img_dir, instances_file
        self.turns_per_sample, self.allow_pickle = turns_per_sample, allow_pickle
        super().__init__(data_root, max_samples, **kwargs)

    def load_samples(self) -> list[dict]:
        root = Path(self.data_root)
        refs_path = root / self.refs_file
        images, anns, categories = read_instances(root / self.instances_file)
        samples: list[dict] = []
        for idx, ref in enumerate(read_refs(refs_path, self.allow_pickle)):
            where = record_name(refs_path, "ref", idx, ref, "ref_id")
            with annotation_errors(where):
                if ref["split"] != self.split:
                    continue
                image = images[int(ref["image_id"])]
                targets = self._targets(ref["ann_id"], anns, where)
                sentences = [(s["sent"], s.get("sent_id")) for s in ref["sentences"]]
            for k, (sent, sent_id) in enumerate(sentences):
                sample = self._sample(ref, image, targets, sent, k, where)
                # the dataset's own ids: predictions made elsewhere name samples by them
                sample["metainfo"] = {"ref_id": ref.get("ref_id"), "sent_id": sent_id}
                samples.append(sample)
        if self.task == "gcg":
            samples = self._gcg(samples)
        elif self.task == "det":
            samples = self._detection(samples, images, anns, categories)
        elif self.turns_per_sample > 1:
            samples = self._group_turns(samples)
        return samples

    def _targets(self, ann_id, anns: dict, where: str) -> list[dict]:
        ids = ann_id if isinstance(ann_id, list) else [ann_id]
        if ids == [-1]:
            return []
        out = []
        for aid in ids:
            if int(aid) not in anns:
                raise AnnotationError(f"{where}: ann_id {aid} not in {self.instances_file}")
            ann = anns[int(aid)]
            box = [
                ann["bbox"][0],
                ann["bbox"][1],
                ann["bbox"][0] + ann["bbox"][2],
                ann["bbox"][1] + ann["bbox"][3],
            ]
            validate_box(box, f"{where} ann_id={aid} bbox")
            out.append({"ann_id": int(aid), "box": box, "segmentation": ann.get("segmentation")})
        return out

    def _sample(
        self, ref: dict, image: dict, targets: list[dict], sent: str, k: int, where: str
    ) -> dict:
        question, answer = TASK_TEMPLATES[self.task]
        sample = {
            "sample_id": f"{ref.get('ref_id')}-{k}",
            "image_path": str(Path(self.data_root) / self.img_dir / image["file_name"]),
            "ori_shape": (int(image["height"]), int(image["width"])),
            "task": self.task,
            "expression": sent,
            "source": where,
            "gt": [],
            "prompts": [],
        }
        unit = TASK_UNITS[self.task]
        if self.task in ("reg", "interactive"):  # the object is given as a visual prompt
            prompt_unit = REG_PROMPT_UNITS[int(ref.get("ref_id", 0)) % len(REG_PROMPT_UNITS)]
            sample["prompts"] = [dict(t, group=0, unit=prompt_unit, phrase="") for t in targets]
        if self.task == "interactive":  # ... and segmented; the answer names no phrase
            sample["gt"] = [dict(t, group=0, unit=unit, phrase="") for t in targets]
        elif self.task != "reg":
            sample["gt"] = [dict(t, group=0, unit=unit, phrase=sent) for t in targets]
        if self.task in ("rec", "res", "gres") and not targets:
            answer = NO_TARGET_ANSWER
        sample["conversation"] = [
            {"role": "user", "text": question.replace("{expression}", sent)},
            {"role": "assistant", "text": answer.replace("{expression}", sent)},
        ]
        return sample

    def _group_turns(self, samples: list[dict]) -> list[dict]:
        """Merge samples of one image into multi-turn conversations.

        Within an image, every object's first sentence comes before any second
        sentence, so a conversation asks about distinct objects where it can
        (a repeated object would let the model copy its earlier answer).
        """
        by_image: dict[str, list[dict]] = {}
        for s in samples:
            by_image.setdefault(s["image_path"], []).append(s)
        ordered = [
            s
            for group in by_image.values()
            for s in sorted(group, key=lambda s: int(s["sample_id"].rsplit("-", 1)[1]))
        ]
        out: list[dict] = []
        for s in ordered:
            last = out[-1] if out else None
            if (
                last
                and last["image_path"] == s["image_path"]
                and last["turns"] < self.turns_per_sample
            ):
                shift = {"target": _num_groups(last["gt"]), "prompt": _num_groups(last["prompts"])}
                turns = [
                    dict(t, text=t["text"].replace("<image>\n", "")) for t in s["conversation"]
                ]
                last["conversation"] += [_shift_slots(t, shift) for t in turns]
                last["gt"] += [dict(g, group=g["group"] + shift["target"]) for g in s["gt"]]
                last["prompts"] += [
                    dict(p, group=p["group"] + shift["prompt"]) for p in s["prompts"]
                ]
                last["turns"] += 1
                last.pop("metainfo", None)  # no longer one sentence's sample
            else:
                out.append(dict(s, turns=1))
        return out

    def _gcg(self, samples: list[dict]) -> list[dict]:
        """One grounded caption per image: every referable object, left to right."""
        by_image: dict[str, dict] = {}
        for s in samples:
            if s["sample_id"].endswith("-0") and len(s["gt"]) == 1:
                by_image.setdefault(s["image_path"], {**s, "gt": [], "objects": []})[
                    "objects"
                ].append(s)
        out = []
        for merged in by_image.values():
            objects = sorted(merged.pop("objects"), key=lambda o: o["gt"][0]["box"][0])
            parts = []
            for g, obj in enumerate(objects):
                phrase = obj["expression"].removeprefix("the ")
                merged["gt"].append(dict(obj["gt"][0], group=g, phrase=phrase))
                parts.append(f"a {phrase} {{target:{g}}}")
            merged["conversation"][1] = {"role": "assistant", "text": ", ".join(parts) + "."}
            merged["sample_id"] = f"gcg-{Path(merged['image_path']).stem}"
            merged.pop("metainfo", None)  # an image's caption, not one sentence
            out.append(merged)
        return out

    def _detection(
        self, samples: list[dict], images: dict, anns: dict, categories: dict
    ) -> list[dict]:
        """One sample per category present in an image of the split (the
        images its refs name): every instance of the category, referable or
        not, is a target, named ``category-k`` left to right."""
        path = Path(self.data_root) / self.instances_file
        by_path = {
            str(Path(self.data_root) / self.img_dir / im["file_name"]): i
            for i, im in images.items()
        }
        by_image: dict[int, dict[int, list[int]]] = {}
        for ann in anns.values():
            if not ann.get("iscrowd", 0):
                cats = by_image.setdefault(int(ann["image_id"]), {})
                cats.setdefault(int(ann["category_id"]), []).append(int(ann["id"]))
        question, answer_template = TASK_TEMPLATES["det"]
        out, seen = [], set()
        for base in samples:
            image_id = by_path[base["image_path"]]
            if image_id in seen:
                continue
            seen.add(image_id)
            for cat, ann_ids in sorted(by_image.get(image_id, {}).items()):
                if cat not in categories:
                    raise AnnotationError(f"{path} ann_id={ann_ids[0]}: unknown category_id {cat}")
                name = categories[cat]
                where = f"{path} image_id={image_id}"
                targets = sorted(self._targets(ann_ids, anns, where), key=lambda t: t["box"][0])
                answer = answer_template.replace(
                    "{targets}", ", ".join(f"{{target:{g}}}" for g in range(len(targets)))
                )
                out.append({
                    **base,
                    "sample_id": f"det-{image_id}-{name}",
                    "expression": name,
                    "source": where,
                    "gt": [
                        dict(t, group=g, unit="box", phrase=f"{name}-{g + 1}")
                        for g, t in enumerate(targets)
                    ],
                    "conversation": [
                        {"role": "user", "text": question.replace("{expression}", name)},
                        {"role": "assistant", "text": answer},
                    ],
                })  # fmt: skip
        return out


def _num_groups(refs: list[dict]) -> int:
    return max((r["group"] for r in refs), default=-1) + 1


def _shift_slots(turn: dict, shift: dict[str, int]) -> dict:
    def bump(m: re.Match) -> str:
        return "{" + m.group(1) + ":" + str(int(m.group(2)) + shift[m.group(1)]) + "}"

    return dict(turn, text=re.sub(SLOT_PATTERN, bump, turn["text"]))
