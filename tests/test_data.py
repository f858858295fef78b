import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset
from pycocotools.coco import COCO

from unigrounding.data import AnnotationError, RefCOCODataset, read_refs
from unigrounding.data.refcoco import convert_refs_pickle
from unigrounding.data.shapesref import (
    REFS_FILE,
    SceneConfig,
    _matches,
    generate_scene,
    referring_expressions,
)
from unigrounding.structures import GeometryError, rle_decode


def test_shapesref_is_deterministic(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    from unigrounding.data.shapesref import write_shapesref

    write_shapesref(a, seed=3, n_train=5, n_val=2)
    write_shapesref(b, seed=3, n_train=5, n_val=2)
    for name in ("instances.json", REFS_FILE):
        assert (a / name).read_text() == (b / name).read_text()
    assert (a / "images" / "train_000000.png").read_bytes() == (
        b / "images" / "train_000000.png"
    ).read_bytes()


def test_shapesref_written_in_coco_format_readable_by_pycocotools(shapes_root):
    coco = COCO(str(shapes_root / "instances.json"))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    img = coco.loadImgs(ann["image_id"])[0]
    mask = coco.annToMask(ann).astype(bool)
    assert mask.shape == (img["height"], img["width"]) and mask.sum() == ann["area"]
    x, y, w, h = ann["bbox"]
    ys, xs = np.nonzero(mask)
    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_expressions_are_unambiguous():
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, objects = generate_scene(rng, SceneConfig())
        for k, obj in enumerate(objects):
            for expr in referring_expressions(objects, k):
                words = expr.removeprefix("the ").split(" on the ")[0].split()
                shape = next(
                    (w for w in words if w in {"circle", "square", "triangle", "diamond", "cross"}),
                    None,
                )
                colour = next(
                    (
                        w
                        for w in words
                        if w in {"red", "green", "blue", "yellow", "purple", "white"}
                    ),
                    None,
                )
                size = next((w for w in words if w in {"small", "big"}), None)
                hits = [o for o in objects if _matches(o, shape, colour, size)]
                if " on the " in expr:
                    assert obj in hits and len(hits) >= 2
                else:
                    assert hits == [obj], expr


@pytest.mark.parametrize("task", ["rec", "res", "reg", "gcg", "gres", "interactive", "det"])
def test_every_task_loads_with_consistent_slots(shapes_root, task):
    ds = make_dataset(shapes_root, task=task)
    assert len(ds) > 0
    sample = ds[0]["data_samples"]
    text = " ".join(t["text"] for t in sample.conversation)
    if task in ("reg", "interactive"):
        assert "{prompt:0}" in text and len(sample.prompt_refs) == 1
    elif task == "gcg":
        assert sample.gt_refs.num_groups == text.count("{target:")
    if task in ("res", "gres", "interactive") and len(sample.gt_refs):
        assert sample.gt_refs.masks.shape[0] == len(sample.gt_refs)
    if task == "interactive":  # the prompt is the target itself
        assert torch.equal(sample.prompt_refs.boxes, sample.gt_refs.boxes)


def test_category_detection_targets_every_instance_of_the_category(shapes_root):
    """One sample per (image, category): every instance of it — referable or
    not — named ``category-k`` left to right, as UGLMM's ``zebra-1 [GND], ...``."""
    ds = make_dataset(shapes_root, task="det")
    instances = json.loads((Path(shapes_root) / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    file_ids = {im["file_name"]: im["id"] for im in instances["images"]}
    seen = set()
    for i in range(len(ds)):
        sample = ds[i]["data_samples"]
        image_id = file_ids[Path(sample.image_path).name]
        expected = sorted(
            a["bbox"][0]
            for a in instances["annotations"]
            if a["image_id"] == image_id and names[a["category_id"]] == sample.expression
        )
        assert sample.conversation[0]["text"] == f"<image>\nDetect every {sample.expression}."
        assert sample.gt_refs.boxes[:, 0].tolist() == expected
        assert list(sample.gt_refs.phrases) == [
            f"{sample.expression}-{k + 1}" for k in range(len(expected))
        ]
        assert sample.conversation[1]["text"] == ", ".join(
            f"{{target:{g}}}" for g in range(len(expected))
        )
        seen.add((image_id, sample.expression))
    assert len(seen) == len(ds)  # one sample per image and category
    assert any(len(ds[i]["data_samples"].gt_refs) > 1 for i in range(len(ds)))


def test_gres_has_multi_and_no_target_expressions(shapes_root):
    ds = make_dataset(shapes_root, split="train", task="gres")
    sizes = [len(ds.get_data_info(i)["gt"]) for i in range(len(ds))]
    assert 0 in sizes and max(sizes) >= 2
    empty = next(i for i, n in enumerate(sizes) if n == 0)
    assert ds[empty]["data_samples"].conversation[1]["text"] == "There is none."


def test_multi_turn_grouping_keeps_slots_pointing_at_their_targets(shapes_root):
    ds = make_dataset(shapes_root, split="train", turns_per_sample=3)
    sample = ds[0]["data_samples"]
    answers = [t["text"] for t in sample.conversation if t["role"] == "assistant"]
    assert answers == [f"{{target:{i}}}" for i in range(len(answers))]
    assert sample.gt_refs.group_ids.tolist() == list(range(len(answers)))
    assert sum("<image>" in t["text"] for t in sample.conversation) == 1


def _copy(shapes_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(shapes_root, root)
    return root


def _load(root, refs_file=REFS_FILE, split="val", task="rec", **kwargs):
    ds = RefCOCODataset(
        data_root=str(root), refs_file=refs_file, split=split, task=task,
        pipeline=[dict(type="PackGroundingSample", image_size=64)], **kwargs,
    )  # fmt: skip
    return ds


def test_malformed_annotation_file_names_the_file(shapes_root, tmp_path):
    root = _copy(shapes_root, tmp_path)
    (root / REFS_FILE).write_text("[{not json")
    with pytest.raises(AnnotationError, match=r"refs\(shapesref\)\.json"):
        _load(root)


def test_record_missing_a_field_names_file_and_ref(shapes_root, tmp_path):
    root = _copy(shapes_root, tmp_path)
    refs = json.loads((root / REFS_FILE).read_text())
    del refs[2]["sentences"]
    (root / REFS_FILE).write_text(json.dumps(refs))
    with pytest.raises(AnnotationError, match=r"ref #2 \(ref_id=2\)"):
        _load(root, split=refs[2]["split"])


def test_inverted_box_names_file_and_annotation(shapes_root, tmp_path):
    root = _copy(shapes_root, tmp_path)
    coco = json.loads((root / "instances.json").read_text())
    refs = json.loads((root / REFS_FILE).read_text())
    bad = next(a for a in coco["annotations"] if a["id"] == refs[0]["ann_id"])
    bad["bbox"][2] = -3.0  # x2 < x1
    (root / "instances.json").write_text(json.dumps(coco))
    with pytest.raises(GeometryError, match=rf"ref_id=0\).*ann_id={bad['id']}.*degenerate"):
        _load(root, split=refs[0]["split"])


def test_empty_mask_names_file_and_sample(shapes_root, tmp_path):
    root = _copy(shapes_root, tmp_path)
    coco = json.loads((root / "instances.json").read_text())
    refs = json.loads((root / REFS_FILE).read_text())
    ref = next(r for r in refs if r["split"] == "val")
    ann = next(a for a in coco["annotations"] if a["id"] == ref["ann_id"])
    ann["segmentation"] = {
        "size": ann["segmentation"]["size"],
        "counts": [ann["segmentation"]["size"][0] * ann["segmentation"]["size"][1]],
    }
    assert not rle_decode(ann["segmentation"], *ann["segmentation"]["size"], "check").any()
    (root / "instances.json").write_text(json.dumps(coco))
    with pytest.raises(
        AnnotationError, match=rf"sample {ref['ref_id']}-0: gt\[0\].segmentation: empty mask"
    ):
        _load(root, task="res")  # validation finds it
    ds = _load(root, task="res", validate="off")  # else packing does
    idx = next(
        i
        for i in range(len(ds))
        if ds.get_data_info(i)["sample_id"].startswith(f"{ref['ref_id']}-")
    )
    with pytest.raises(
        ValueError, match=rf"sample {ref['ref_id']}-0 ann_id={ann['id']}: empty mask"
    ):
        ds[idx]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_missing_image_names_item_file_and_sample(shapes_root, tmp_path, num_workers):
    """A SampleError, also from a DataLoader worker (which passes on only the
    class and the message): what training stops on with a checkpoint."""
    from torch.utils.data import DataLoader

    from unigrounding.data import SampleError, collate

    root = _copy(shapes_root, tmp_path)
    ds = _load(root)
    info = ds.get_data_info(0)
    (root / "images" / info["image_path"].split("/")[-1]).unlink()
    loader = DataLoader(ds, batch_size=2, num_workers=num_workers, collate_fn=collate)
    with pytest.raises(SampleError) as err:
        next(iter(loader))
    assert re.search(
        rf"RefCOCODataset \({re.escape(str(root))}\) item 0: .* sample {info['sample_id']}: "
        rf"image file not found: {re.escape(info['image_path'])}",
        str(err.value),
    )
    if num_workers == 0:
        assert isinstance(err.value.__cause__, FileNotFoundError)


def test_cached_images_give_the_same_inputs_and_are_decoded_once(shapes_root, tmp_path):
    from unigrounding.data import PackGroundingSample

    root = _copy(shapes_root, tmp_path)
    records = [_load(root).get_data_info(i) for i in range(3)]
    plain, cached = PackGroundingSample(32), PackGroundingSample(32, cache_images=True)
    first = [cached(r)["inputs"] for r in records]
    assert all(torch.equal(x, plain(r)["inputs"]) for r, x in zip(records, first, strict=True))
    for r in records:
        Path(r["image_path"]).unlink(missing_ok=True)
    again = [cached(r) for r in records]  # the files are gone: served from memory
    assert all(torch.equal(a["inputs"], b) for a, b in zip(again, first, strict=True))
    again[0]["inputs"].zero_()  # a consumer's in-place change does not reach the cache
    assert torch.equal(cached(records[0])["inputs"], first[0])
    with pytest.raises(FileNotFoundError, match="image file not found"):
        plain(records[0])


def test_qwen_frame_resizes_without_padding_and_collate_pads_mixed_sizes(shapes_root):
    """``frame="qwen2_5_vl"``: ShapesRef's 72x60 images become 84x56 inputs
    (multiples of 28, no padding), a box maps to the input and back exactly;
    collating it with a differently sized input pads both to the largest."""
    from unigrounding.data import PackGroundingSample
    from unigrounding.data.pipeline import collate

    record = _load(shapes_root).get_data_info(0)
    packed = PackGroundingSample(frame="qwen2_5_vl")(record)
    sample = packed["data_samples"]
    assert packed["inputs"].shape == (3, 56, 84) and sample.frame.input_hw == (56, 84)
    box = sample.gt_refs.boxes.numpy()
    scale = np.array([84 / 72, 56 / 60] * 2)
    assert np.allclose(sample.frame.boxes_to_input(box), box * scale)
    assert np.allclose(sample.frame.boxes_to_original(box * scale), box)
    square = PackGroundingSample(40)(record)
    batch = collate([packed, square])
    assert batch["inputs"].shape == (2, 3, 56, 84)
    assert torch.equal(batch["inputs"][1, :, :40, :40], square["inputs"])
    assert (
        batch["inputs"][1, :, 40:].abs().sum() == 0
        and batch["inputs"][1, :, :, 40:].abs().sum() == 0
    )
    with pytest.raises(ValueError, match="frame must be one of"):
        PackGroundingSample(64, frame="square")


def test_pickle_refused_without_opt_in_then_converted(shapes_root, tmp_path):
    refs = json.loads((shapes_root / REFS_FILE).read_text())
    pickled = tmp_path / "refs(unc).p"
    pickled.write_bytes(pickle.dumps(refs))
    with pytest.raises(AnnotationError, match="refusing to unpickle"):
        read_refs(pickled)
    assert read_refs(pickled, allow_pickle=True) == refs
    converted = convert_refs_pickle(pickled)
    assert converted.suffix == ".json" and read_refs(converted) == refs


# ---------------------------------------------------------------- LVIS-Ground
def _lvis_fixture(root, n_images=7):
    """An LVIS-v1-format val file: category 1 in every image (twice in image 1),
    category 2 in image 3 only; images referenced by ``coco_url`` (as in v1)."""
    from PIL import Image

    (root / "val2017").mkdir(parents=True)
    images, anns = [], []
    for i in range(1, n_images + 1):
        name = f"{i:012d}.jpg"
        Image.new("RGB", (30, 20), (i * 20, 0, 0)).save(root / "val2017" / name)
        images.append({"id": i, "height": 20, "width": 30, "coco_url": f"http://x/val2017/{name}"})
        anns.append({"id": 10 * i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 4]})
    anns.append({"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 2, 8, 8], "area": 50.0})
    anns.append({"id": 31, "image_id": 3, "category_id": 2, "bbox": [0, 0, 30, 20]})
    cats = [{"id": 1, "name": "baseball_bat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "yak"}]
    lvis = {"images": images, "annotations": anns, "categories": cats}
    (root / "lvis_v1_val.json").write_text(json.dumps(lvis))
    return lvis


def test_lvis_ground_caps_images_per_category_and_takes_all_instances(tmp_path):
    from unigrounding.data import LVISGroundDataset

    _lvis_fixture(tmp_path)
    pipeline = [dict(type="PackGroundingSample", image_size=32)]
    ds = LVISGroundDataset(str(tmp_path), pipeline=pipeline)
    records = [ds.get_data_info(i) for i in range(len(ds))]
    bats = [r for r in records if r["expression"] == "baseball bat"]
    assert [r["sample_id"] for r in bats] == ["1-1", "2-1", "3-1", "4-1", "5-1"]
    assert len(bats[0]["gt"]) == 2 and [r["expression"] for r in records].count("dog") == 1
    sample = ds[0]["data_samples"]
    assert sample.category == "baseball bat" and len(sample.gt_refs) == 2
    assert sample.gt_refs.boxes.tolist() == [[1, 1, 6, 5], [10, 2, 18, 10]]
    assert sample.target_areas == [None, 50.0]  # the annotation's area where it has one
    assert "Locate every baseball bat" in sample.conversation[0]["text"]


def test_lvis_ground_perfect_predictions_score_ar_one(tmp_path):
    from unigrounding.data import LVISGroundDataset
    from unigrounding.evaluation import LVISGroundAR

    _lvis_fixture(tmp_path)
    ds = LVISGroundDataset(
        str(tmp_path), pipeline=[dict(type="PackGroundingSample", image_size=32)]
    )
    metric = LVISGroundAR()
    samples = []
    for i in range(len(ds)):
        s = ds[i]["data_samples"]
        s.pred_refs = s.gt_refs
        samples.append(s.to_dict())
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    assert out["ar"] == 1.0 and out["categories"] == 2 and out["n"] == 6


def test_lvis_ground_malformed_annotation_names_file_and_record(tmp_path):
    from unigrounding.data import AnnotationError, LVISGroundDataset

    lvis = _lvis_fixture(tmp_path)
    lvis["annotations"][2]["category_id"] = 99
    (tmp_path / "lvis_v1_val.json").write_text(json.dumps(lvis))
    with pytest.raises(AnnotationError, match=r"lvis_v1_val.json annotation #2 \(id=30\): unknown"):
        LVISGroundDataset(str(tmp_path))


# ---------------------------------------------------------------- Visual Genome, Flickr30k
def _image(path, size=(40, 30)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 10, 10)).save(path)


def test_visual_genome_regions_become_box_prompted_reg_samples(tmp_path):
    from unigrounding.data import VisualGenomeRegionDataset

    _image(tmp_path / "VG_100K_2" / "7.jpg")
    (tmp_path / "image_data.json").write_text(
        json.dumps([{"image_id": 7, "width": 40, "height": 30, "url": "http://x/VG_100K_2/7.jpg"}])
    )
    regions = [
        {
            "region_id": 1,
            "image_id": 7,
            "phrase": " a red  wall ",
            "x": 2,
            "y": 3,
            "width": 10,
            "height": 5,
        },
        {"region_id": 2, "image_id": 7, "phrase": "sky", "x": 0, "y": 0, "width": 40, "height": 8},
    ]
    (tmp_path / "region_descriptions.json").write_text(json.dumps([{"id": 7, "regions": regions}]))
    ds = VisualGenomeRegionDataset(
        str(tmp_path), pipeline=[dict(type="PackGroundingSample", image_size=32)]
    )
    assert len(ds) == 2
    sample = ds[0]["data_samples"]
    assert sample.prompt_refs.boxes.tolist() == [[2, 3, 12, 8]] and len(sample.gt_refs) == 0
    assert sample.expression == "a red wall" and sample.conversation[1]["text"] == "a red wall"
    regions[1]["width"] = 0
    (tmp_path / "region_descriptions.json").write_text(json.dumps([{"id": 7, "regions": regions}]))
    with pytest.raises(GeometryError, match="region_descriptions.json region_id=2"):
        VisualGenomeRegionDataset(str(tmp_path))


FLICKR_XML = """<annotation><filename>5.jpg</filename>
<size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>18</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
<object><name>18</name><bndbox><xmin>21</xmin><ymin>1</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>
<object><name>20</name><name>21</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>8</xmax><ymax>8</ymax></bndbox></object>
<object><name>19</name><nobndbox>1</nobndbox><scene>1</scene></object>
</annotation>"""


def test_flickr30k_entities_become_grounded_captions(tmp_path):
    from unigrounding.data import Flickr30kEntitiesDataset

    _image(tmp_path / "flickr30k-images" / "5.jpg")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "5.xml").write_text(FLICKR_XML)
    (tmp_path / "Sentences").mkdir()
    (tmp_path / "Sentences" / "5.txt").write_text(
        "[/EN#18/people Two men] in [/EN#19/scene a park] hold [/EN#20/other a ball] .\n"
    )
    (tmp_path / "test.txt").write_text("5\n")
    ds = Flickr30kEntitiesDataset(
        str(tmp_path), pipeline=[dict(type="PackGroundingSample", image_size=32)]
    )
    sample = ds[0]["data_samples"]
    assert sample.conversation[1]["text"] == "Two men {target:0} in a park hold a ball {target:1} ."
    # 1-based inclusive corners -> 0-based half-open; two boxes for entity 18
    assert sample.gt_refs.boxes.tolist() == [[0, 0, 10, 20], [20, 0, 30, 20], [4, 4, 8, 8]]
    assert sample.gt_refs.group_ids.tolist() == [0, 0, 1]
    assert sample.gt_refs.phrases == ["Two men", "Two men", "a ball"]
    (tmp_path / "Annotations" / "5.xml").write_text(FLICKR_XML.replace("<size>", "<size"))
    with pytest.raises(AnnotationError, match="5.xml: malformed Flickr30k"):
        Flickr30kEntitiesDataset(str(tmp_path))


# ---------------------------------------------------------------- importers
def test_swift_grounding_jsonl_becomes_slots_with_phrases(tmp_path):
    from unigrounding.data import SwiftGroundingDataset

    _image(tmp_path / "img" / "cat.png", size=(200, 100))
    rec = {
        "messages": [
            {"role": "user", "content": "<image>Locate the <ref-object> in the image"},
            {"role": "assistant", "content": "<ref-object> <bbox> and <bbox>"},
            {"role": "user", "content": "What is in <bbox>?"},
            {"role": "assistant", "content": "grass"},
        ],
        "images": ["img/cat.png"],
        "objects": {
            "ref": ["sheep", "sheep"],
            "bbox": [[10, 20, 50, 60], [100, 10, 150, 90], [0, 0, 20, 20]],
        },
    }
    norm = dict(rec, objects=dict(rec["objects"], bbox_type="norm1000"))
    (tmp_path / "train.jsonl").write_text(json.dumps(rec) + "\n\n" + json.dumps(norm) + "\n")
    ds = SwiftGroundingDataset(
        str(tmp_path), pipeline=[dict(type="PackGroundingSample", image_size=32)]
    )
    first, second = ds[0]["data_samples"], ds[1]["data_samples"]
    assert [t["text"] for t in first.conversation] == [
        "<image>Locate the sheep in the image",
        "sheep {target:0} and {target:1}",
        "What is in {prompt:0}?",
        "grass",
    ]
    assert first.gt_refs.boxes.tolist() == [[10, 20, 50, 60], [100, 10, 150, 90]]
    assert first.gt_refs.phrases == ["sheep", "sheep"] and first.prompt_refs.boxes.tolist() == [
        [0, 0, 20, 20]
    ]
    # norm1000: x by width 200, y by height 100
    assert second.gt_refs.boxes[0].tolist() == pytest.approx([2, 2, 10, 6])
    bad = dict(rec, objects={"ref": ["sheep", "sheep"], "bbox": [[10, 20, 50, 60]]})
    (tmp_path / "bad.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(AnnotationError, match=r"bad.jsonl line 2: more <bbox> than objects.bbox"):
        SwiftGroundingDataset(str(tmp_path), file="bad.jsonl")


def test_llava_shikra_boxes_become_prompt_and_target_groups(tmp_path):
    from unigrounding.data import LLaVAShikraDataset

    _image(tmp_path / "a.jpg", size=(200, 100))
    records = [
        {
            "id": "q1",
            "image": "a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is [0.100,0.200,0.300,0.400] doing?"},
                {"from": "gpt", "value": "Chasing the dogs [0.5,0.1,0.6,0.2;0.7,0.1,0.8,0.3]."},
            ],
        }
    ]
    (tmp_path / "data.json").write_text(json.dumps(records))
    ds = LLaVAShikraDataset(
        str(tmp_path), pipeline=[dict(type="PackGroundingSample", image_size=32)]
    )
    sample = ds[0]["data_samples"]
    assert sample.conversation[0]["text"] == "<image>\nWhat is {prompt:0} doing?"
    assert sample.conversation[1]["text"] == "Chasing the dogs {target:0}."
    assert np.allclose(sample.prompt_refs.boxes, [[20, 20, 60, 40]])
    assert np.allclose(sample.gt_refs.boxes, [[100, 10, 120, 20], [140, 10, 160, 30]])
    assert sample.gt_refs.group_ids.tolist() == [0, 0]
    records[0]["conversations"][1]["value"] = "[0.5,0.1,0.4,0.2]"  # x2 < x1
    (tmp_path / "data.json").write_text(json.dumps(records))
    with pytest.raises(GeometryError, match=r"data.json record #0 \(id=q1\) box"):
        LLaVAShikraDataset(str(tmp_path))


# ---------------------------------------------------------------- the shared base
def test_max_samples_is_one_rule_for_every_dataset(shapes_root, tmp_path):
    """The first ``max_samples`` samples (``None`` or 0: all), for every dataset;
    a loader that streams its records never reads past them."""
    from unigrounding.data import (
        CocoCellLabelDataset,
        CocoDetectionDataset,
        VisualGenomeRegionDataset,
    )

    everything = len(CocoDetectionDataset(str(shapes_root)))
    assert len(CocoDetectionDataset(str(shapes_root), max_samples=0)) == everything
    categories = {"category": [1, 2, 3, 4, 5]}
    assert len(CocoCellLabelDataset(str(shapes_root), attributes=categories, max_samples=3)) == 3
    with pytest.raises(ValueError, match="max_samples must be >= 0 or None, got -1"):
        CocoDetectionDataset(str(shapes_root), max_samples=-1)
    _image(tmp_path / "VG_100K" / "7.jpg")
    (tmp_path / "image_data.json").write_text(
        json.dumps([{"image_id": 7, "width": 40, "height": 30}])
    )
    wall = {"region_id": 1, "phrase": "wall", "x": 0, "y": 0, "width": 5, "height": 5}
    regions = [{"id": 7, "regions": [wall, {"region_id": 2}]}]  # region 2 is malformed
    (tmp_path / "region_descriptions.json").write_text(json.dumps(regions))
    assert len(VisualGenomeRegionDataset(str(tmp_path), max_samples=1)) == 1
    with pytest.raises(AnnotationError, match="region_id=2: malformed record"):
        VisualGenomeRegionDataset(str(tmp_path))


# ---------------------------------------------------------------- validation at construction
def _val_images(root, n: int) -> list[tuple[dict, list[dict]]]:
    """The first ``n`` val images of a ShapesRef copy, each with its refs."""
    images = {im["id"]: im for im in json.loads((root / "instances.json").read_text())["images"]}
    by_image: dict[int, list[dict]] = {}
    for ref in json.loads((root / REFS_FILE).read_text()):
        if ref["split"] == "val":
            by_image.setdefault(ref["image_id"], []).append(ref)
    return [(images[i], refs) for i, refs in sorted(by_image.items())[:n]]


def _edit_instances(root, edit) -> None:
    coco = json.loads((root / "instances.json").read_text())
    edit(coco)
    (root / "instances.json").write_text(json.dumps(coco))


def _samples_of(ds, image: dict) -> list[str]:
    return [
        ds.get_data_info(i)["sample_id"]
        for i in range(len(ds))
        if ds.get_data_info(i)["image_path"].endswith(image["file_name"])
    ]


def test_validation_lists_every_bad_record_at_construction(shapes_root, tmp_path):
    """A missing image, a recorded size the image does not have and a mask of
    another size: one error at construction names each record, file and field."""
    from unigrounding.structures import rle_encode

    root = _copy(shapes_root, tmp_path)
    (missing, _), (resized, _), (_, masked_refs) = _val_images(root, 3)
    everything = _load(root, task="res", validate="off")
    (root / "images" / missing["file_name"]).unlink()

    def edit(coco):
        next(im for im in coco["images"] if im["id"] == resized["id"])["height"] += 1
        ann = next(a for a in coco["annotations"] if a["id"] == masked_refs[0]["ann_id"])
        ann["segmentation"] = rle_encode(np.ones((10, 10), dtype=bool))

    _edit_instances(root, edit)
    with pytest.raises(AnnotationError) as caught:
        _load(root, task="res")
    message, problems = str(caught.value), caught.value.problems
    image_path = root / "images" / missing["file_name"]
    for sample_id in _samples_of(everything, missing):  # every record of the image, not the first
        assert f"sample {sample_id}: image_path: image file not found: {image_path}" in message
    h, w = resized["height"], resized["width"]
    assert f"ori_shape: image is {(h, w)} (height, width), annotation says {(h + 1, w)}" in message
    assert (
        f"json ref #{masked_refs[0]['ref_id']} (ref_id={masked_refs[0]['ref_id']}) sample "
        f"{masked_refs[0]['ref_id']}-0: gt[0].segmentation: mask shape (10, 10) != image shape "
        f"{(h, w)}"
    ) in message
    assert {p.kind for p in problems} == {"image missing", "size mismatch", "bad segmentation"}
    per_problem = [_samples_of(everything, missing), _samples_of(everything, resized)]
    assert len(problems) == sum(map(len, per_problem)) + len(masked_refs[0]["sentences"])
    assert len(_load(root, task="res", validate="off")) == len(everything)  # off: no check


def test_validate_clip_clips_boxes_and_drops_unreadable_images(shapes_root, tmp_path, caplog):
    """``clip``: a box over the image's edge is clipped to it, the records of an
    unreadable image are dropped, the counts logged; ``max_samples`` counts
    the records kept."""
    from mmengine.logging import MMLogger

    root = _copy(shapes_root, tmp_path)
    (broken, _), (image, refs) = _val_images(root, 2)
    everything = _load(root, validate="off")
    (root / "images" / broken["file_name"]).write_bytes(b"not a png")
    ann_id = refs[0]["ann_id"]

    def edit(coco):
        ann = next(a for a in coco["annotations"] if a["id"] == ann_id)
        ann["bbox"][2] = image["width"] + 5 - ann["bbox"][0]  # x2 = width + 5

    _edit_instances(root, edit)
    outside = rf"sample {refs[0]['ref_id']}-0: gt\[0\]\.box: box .* is outside the image"
    with pytest.raises(
        AnnotationError, match=rf"{outside} \(height {image['height']}, width {image['width']}\)"
    ):
        _load(root)
    dropped, clipped = len(_samples_of(everything, broken)), len(refs[0]["sentences"])
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    try:
        ds = _load(root, validate="clip")
    finally:
        logger.removeHandler(caplog.handler)
    assert len(ds) == len(everything) - dropped and not _samples_of(ds, broken)
    records = [ds.get_data_info(i) for i in range(len(ds))]
    boxes = [r["gt"][0]["box"] for r in records if r["gt"][0]["ann_id"] == ann_id]
    assert len(boxes) == clipped and all(b[2] == image["width"] for b in boxes)
    assert (
        f"validate='clip' dropped {dropped} of {len(everything)} records "
        f"(image unreadable {dropped}, boxes clipped {clipped})"
    ) in caplog.text
    assert everything.get_data_info(0)["image_path"].endswith(broken["file_name"])
    assert len(_load(root, validate="clip", max_samples=3)) == 3  # the first 3 that pass
