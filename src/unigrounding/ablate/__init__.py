"""``unigrounding ablate``: every codec on one backbone, one data set, one budget.

Each codec is fine-tuned for the same number of iterations from the same
codec-neutral checkpoint — the vision tower pretrained once on ShapesRef cell
attributes (``configs/pretrain/shapesref_cells.py``) and cached — then
evaluated with the same metrics. A trivial baseline is printed beside them so a
number can be read against "no learning at all". ``task="rec"`` (the default)
compares boxes; ``task="res"`` retrains the codecs that can output masks on
ShapesRef RES and scores cIoU / gIoU.

Modules: :mod:`.presets` (budgets, folders), :mod:`.configs` (what the
ablation changes in a codec's config), :mod:`.stages` (cached training
stages), :mod:`.baseline`, :mod:`.codec_job` (one codec's job and report row),
:mod:`.lanes` and :mod:`.scheduling` (running the jobs side by side),
:mod:`.report` (report.json / report.md / charts), :mod:`.run` (the whole).
"""

from .lanes import default_jobs
from .presets import PRESETS, config_dir
from .run import run_ablation

__all__ = ["PRESETS", "config_dir", "default_jobs", "run_ablation"]
