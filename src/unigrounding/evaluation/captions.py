"""Region captioning (REG) metrics: METEOR and CIDEr through pycocoevalcap.

Protocol: candidates are the model's answers (``pred_text``), references the
sample's ``references`` metainfo (all sentences of the region), else its
``expression``. Both are tokenised by pycocoevalcap's PTB tokenizer (lower
case, punctuation removed), as in the COCO caption evaluation. CIDEr is
CIDEr-D's corpus form over the evaluated split (its IDF comes from the
references of that split). An empty answer scores 0. METEOR and the
tokenizer run Java (``java`` on the PATH).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence

from mmengine.evaluator import BaseMetric

from ..registry import METRICS


def _caption_scorers():
    try:
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:
        raise ImportError(
            "REG metrics need pycocoevalcap: pip install 'unigrounding[eval]'"
        ) from exc
    if shutil.which("java") is None:
        raise RuntimeError("REG metrics need Java (METEOR and the PTB tokenizer run it): no `java`")
    return PTBTokenizer, Cider, Meteor


@METRICS.register_module()
class REGMetric(BaseMetric):
    """METEOR and CIDEr of region captions (``meteor=False`` skips the slower
    METEOR, ~15 s of Java start-up)."""

    default_prefix = "reg"
    protocol = "reg pycocoevalcap ptb"

    def __init__(self, meteor: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.meteor = meteor

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            refs = list(s.get("references") or [s.get("expression", "")])
            refs = [r for r in refs if r and r.strip()]
            if not refs:
                raise ValueError(f"sample {s.get('sample_id', '?')}: REG needs a reference caption")
            self.results.append({"candidate": s.get("pred_text", "") or "", "refs": refs})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        tokenizer_cls, cider_cls, meteor_cls = _caption_scorers()
        tokenizer = tokenizer_cls()
        gts = tokenizer.tokenize(
            {i: [{"caption": c} for c in r["refs"]] for i, r in enumerate(results)}
        )
        res = tokenizer.tokenize({i: [{"caption": r["candidate"]}] for i, r in enumerate(results)})
        out = {
            "cider": float(cider_cls().compute_score(gts, res)[0]),
            "n": len(results),
            "protocol": self.protocol,
        }
        if self.meteor:
            out["meteor"] = float(meteor_cls().compute_score(gts, res)[0])
        return out
