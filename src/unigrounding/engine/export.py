"""Exported model folders: data only, self-contained, each weight read once.

Layout of ``export/``::

    unigrounding.json   the model config as JSON (format, version, model)
    model.safetensors   every weight outside the LLM (tower, projector, codec, ...)
    llm/                the LLM and its tokenizer in ``save_pretrained`` form:
                        ``AutoModelForCausalLM`` / ``AutoTokenizer`` read it as is
    lora/               only with ``lora="adapter"``: the peft adapter
                        (``PeftModel.from_pretrained(llm, export / "lora")``)

Nothing in a folder is executed when it is loaded: the config is JSON and
weights are safetensors. Configs (``.py``) are Python and run as code; an
export is not. Folders written before this format (``config.py`` + a single
``model.safetensors``) are refused with the command that converts them.

Paths in the JSON config are relative to the folder, and every weight source
the training config named (``init_checkpoint``, the tower's ``checkpoint``,
the base LLM folder) is replaced by the export's own copy, so the folder
loads anywhere with no other folder present.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from mmengine.model import is_model_wrapper
from safetensors.torch import save_file

from .safe_load import read_safetensors

WEIGHTS = "model.safetensors"
CONFIG = "unigrounding.json"
LEGACY_CONFIG = "config.py"
LLM_DIR = "llm"
LORA_DIR = "lora"
FORMAT = "unigrounding-export"
VERSION = 2
_TUPLE = "__tuple__"


class LegacyExportError(ValueError):
    """An export in the first format, whose config is Python code."""


def _to_json(value, where: str):
    """Config data as JSON values; tuples are tagged so they come back as tuples."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, tuple):
        return {_TUPLE: [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{where}: {type(value).__name__} is not data and cannot be exported")


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {_TUPLE}:
            return tuple(_from_json(v) for v in value[_TUPLE])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def _is_peft(llm: torch.nn.Module) -> bool:
    return hasattr(llm, "get_base_model") and hasattr(llm, "peft_config")


def _base_llm_state(llm: torch.nn.Module, merge: bool) -> dict[str, torch.Tensor]:
    """The LLM's state in its own (transformers) key names; for a peft model
    the base weights, with each LoRA delta added when ``merge``."""
    if not _is_peft(llm):
        return llm.state_dict()
    from peft.tuners.lora import LoraLayer

    base = llm.get_base_model()
    state = {}
    for name, tensor in base.state_dict().items():
        if "lora_" in name:
            continue
        state[name.replace(".base_layer.", ".")] = tensor
    if merge:
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer) and not module.merged:
                key = f"{name}.weight"
                delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
                state[key] = state[key] + delta.to(state[key].dtype)
    return state


def _llm_key_names(llm: torch.nn.Module) -> dict[str, str]:
    """transformers key -> key in ``llm.state_dict()`` (they differ under peft)."""
    names = {}
    for name in llm.state_dict():
        if "lora_" in name:
            continue
        hf = name.removeprefix("base_model.model.") if _is_peft(llm) else name
        names[hf.replace(".base_layer.", ".")] = name
    return names


def _separate_storage(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state safetensors can write: tensors sharing memory get copies."""
    seen, out = set(), {}
    for key, tensor in state.items():
        tensor = tensor.detach()
        ptr = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        out[key] = tensor.clone().contiguous() if ptr in seen else tensor.contiguous()
        seen.add(ptr)
    return out


#: Weight-name prefix of a merged-patch VLM's encoder in its own folder
#: (``model.visual.``) and in the grounding model (``vision.visual.``).
VLM_ENCODER_PREFIX, TOWER_ENCODER_PREFIX = "model.visual.", "vision.visual."


def _saves_whole_vlm(model: torch.nn.Module) -> bool:
    """Whether the export's ``llm/`` is the whole VLM, encoder included (a
    merged-patch VLM, whose LM is the VLM itself: the folder then loads
    anywhere as that VLM, and the export reads its tower from it)."""
    from ..models.vlm import MergedPatchTower

    return isinstance(getattr(model, "vision", None), MergedPatchTower)


def _export_model_config(
    model_cfg: Mapping,
    has_llm: bool,
    lora: str,
    vlm_spec: dict | None = None,
    whole_vlm: bool = False,
) -> dict:
    """The model config as the export folder reads it: its own LLM and
    tokenizer, and no weight source outside the folder (a VLM backbone:
    rebuilt from its config, ``vlm_spec``, or, ``whole_vlm``, the VLM
    folder ``llm/``)."""
    cfg = copy.deepcopy(dict(model_cfg))
    cfg.pop("init_checkpoint", None)
    if whole_vlm:
        keep = {k: v for k, v in dict(cfg["vlm"]).items() if k not in ("pretrained", "config")}
        cfg["vlm"] = {**keep, "pretrained": LLM_DIR}
        cfg.pop("llm", None)
        cfg["tokenizer"] = {"path": LLM_DIR}
        if cfg.get("lora") is not None:
            cfg["lora"] = {**dict(cfg["lora"]), "adapter": LORA_DIR} if lora == "adapter" else None
        return cfg
    if vlm_spec is not None:
        keep = {k: v for k, v in dict(cfg["vlm"]).items() if k not in ("pretrained", "config")}
        cfg["vlm"] = {**keep, **vlm_spec}
    if isinstance(cfg.get("vision"), Mapping):
        cfg["vision"] = {k: v for k, v in cfg["vision"].items() if k != "checkpoint"}
    if has_llm:
        llm = dict(cfg.get("llm") or {})
        keep = {k: v for k, v in llm.items() if k not in ("pretrained", "config")}
        cfg["llm"] = {**keep, "pretrained": LLM_DIR}
        cfg["tokenizer"] = {"path": LLM_DIR}
        if cfg.get("lora") is not None:
            cfg["lora"] = {**dict(cfg["lora"]), "adapter": LORA_DIR} if lora == "adapter" else None
    return cfg


def export_model(
    model: torch.nn.Module,
    cfg,
    out_dir: str | Path,
    lora: str = "merge",
    llm_dtype: str | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (trained with config ``cfg``) as an export folder.

    Args:
        lora: for an LLM fine-tuned with LoRA, ``"merge"`` (the deltas added
            into the saved LLM, which then loads without peft) or
            ``"adapter"`` (the base LLM plus a peft adapter folder).
        llm_dtype: dtype of the saved LLM weights (``"bfloat16"`` halves a 7B
            export); ``None``: as trained.
        state: the model's full state, when ``model.state_dict()`` cannot
            give it (a model sharded with FSDP:
            a sharded model wrapper's ``full_state_dict()``).
    """
    if lora not in ("merge", "adapter"):
        raise ValueError(f"lora must be 'merge' or 'adapter', got {lora!r}")
    model = _unwrap(model)
    if hasattr(model, "exported_model"):  # a stage that trains a model it wraps (RL)
        if state is not None:
            raise ValueError(f"{type(model).__name__} cannot export from a gathered state")
        model, model_cfg = model.exported_model()
        cfg = {"model": model_cfg}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    llm = getattr(model, "llm", None)
    has_llm = llm is not None and hasattr(llm, "save_pretrained")
    whole_vlm = _saves_whole_vlm(model)
    full = model.state_dict() if state is None else state
    in_folder = ("llm.", TOWER_ENCODER_PREFIX) if whole_vlm else ("llm.",)
    state = {k: v for k, v in full.items() if not (has_llm and k.startswith(in_folder))}
    if has_llm:
        if full is state or _is_peft(llm):
            base = _base_llm_state(llm, merge=lora == "merge")
        else:  # a gathered state (FSDP): the LLM's part of it
            base = {k.removeprefix("llm."): v for k, v in full.items() if k.startswith("llm.")}
        if whole_vlm:
            encoder = {
                VLM_ENCODER_PREFIX + k.removeprefix(TOWER_ENCODER_PREFIX): v
                for k, v in full.items()
                if k.startswith(TOWER_ENCODER_PREFIX)
            }
            base = {**base, **encoder}
        if llm_dtype is not None:
            from ..models.llm import DTYPES

            base = {
                k: v.to(DTYPES[llm_dtype]) if v.is_floating_point() else v for k, v in base.items()
            }
        target = llm.get_base_model() if _is_peft(llm) else llm
        target.save_pretrained(str(out / LLM_DIR), state_dict=base)
        model.tokenizer.save_pretrained(str(out / LLM_DIR))
        if whole_vlm:
            model.vision.processor.save_pretrained(str(out / LLM_DIR))
        if _is_peft(llm) and lora == "adapter":
            llm.save_pretrained(str(out / LORA_DIR))
    save_file(_separate_storage(state), str(out / WEIGHTS))
    model_cfg = _export_model_config(
        cfg["model"], has_llm, lora, getattr(model, "vlm_spec", None), whole_vlm
    )
    document = {"format": FORMAT, "version": VERSION, "model": _to_json(model_cfg, "model")}
    (out / CONFIG).write_text(json.dumps(document, indent=1))
    (out / LEGACY_CONFIG).unlink(missing_ok=True)
    return out


def read_export_config(path: str | Path) -> dict:
    """The model config of export folder ``path``, its relative paths resolved.
    Reads JSON only: nothing in the folder runs."""
    path = Path(path)
    file = path / CONFIG
    if not file.exists():
        if (path / LEGACY_CONFIG).exists():
            raise LegacyExportError(
                f"{path} is an export of unigrounding 0.1: its config.py is Python and would "
                "run code if loaded, so it is not. If you trust its source, convert it once "
                f"with: unigrounding export-convert {path}"
            )
        raise FileNotFoundError(f"{path} is not an exported model folder (no {CONFIG})")
    try:
        document = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{file}: not a readable export config ({err})") from err
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValueError(
            f"{file}: format {document.get('format')!r} version {document.get('version')!r}, "
            f"this library reads {FORMAT!r} version {VERSION}"
        )
    cfg = _from_json(document["model"])
    for part in ("llm", "vlm"):
        if isinstance(cfg.get(part), dict) and cfg[part].get("pretrained") == LLM_DIR:
            cfg[part]["pretrained"] = str(path / LLM_DIR)
            cfg["tokenizer"] = {"path": str(path / LLM_DIR)}
    if isinstance(cfg.get("lora"), dict) and cfg["lora"].get("adapter") == LORA_DIR:
        cfg["lora"]["adapter"] = str(path / LORA_DIR)
    return cfg


def export_state(path: str | Path, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of an export folder (or ``.safetensors`` file) in
    ``model``'s key names: the LLM's under ``llm.`` (mapped through peft's
    names when ``model`` fine-tunes with LoRA)."""
    path = Path(path)
    if not path.is_dir():
        return read_safetensors(path)
    if not (path / WEIGHTS).exists():
        raise FileNotFoundError(f"{path}: no {WEIGHTS}")
    state = read_safetensors(path / WEIGHTS)
    llm_dir = path / LLM_DIR
    if llm_dir.is_dir():
        llm = getattr(model, "llm", None) if model is not None else None
        names = _llm_key_names(llm) if llm is not None else {}
        for file in sorted(llm_dir.glob("*.safetensors")):
            for key, tensor in read_safetensors(file).items():
                if key.startswith(VLM_ENCODER_PREFIX):  # a whole VLM's encoder: the tower
                    state[TOWER_ENCODER_PREFIX + key.removeprefix(VLM_ENCODER_PREFIX)] = tensor
                else:
                    state[f"llm.{names.get(key, key)}"] = tensor
    return state


def load_weights(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load an export folder, a ``.safetensors`` file or an mmengine ``.pth``
    into ``model`` (every tensor it has must be there)."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        _load_checked(model, export_state(path, model), path)
        return
    from mmengine.runner import load_checkpoint

    from .safe_load import use_safe_local_loader

    use_safe_local_loader()
    load_checkpoint(model, str(path), map_location="cpu", strict=True)


def load_export_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load the weights outside the LLM of export folder ``path`` into a model
    built from its config (whose LLM came from ``path/llm``: each weight of
    the folder is read once)."""
    path = Path(path)
    state = read_safetensors(path / WEIGHTS)
    from_folder = ("llm.", TOWER_ENCODER_PREFIX) if _saves_whole_vlm(model) else ("llm.",)
    _load_checked(model, state, path, skip_prefix=from_folder)


def _load_checked(
    model: torch.nn.Module, state: dict, path: Path, skip_prefix: tuple[str, ...] = ()
) -> None:
    """``load_state_dict`` that names what does not match; a tensor tied to
    one that was loaded (embeddings shared with the LM head, which
    ``save_pretrained`` writes once) counts as loaded."""
    model = _unwrap(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    groups: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(tensor.data_ptr(), []).append(key)
    loaded = set(state)
    shared = {k for keys in groups.values() if loaded & set(keys) for k in keys}
    missing = [k for k in missing if k not in shared]
    missing = [k for k in missing if not k.startswith(skip_prefix)]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the model: missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )


def init_from_pretrained(model: torch.nn.Module, checkpoint: str | Path) -> dict[str, list[str]]:
    """Initialise ``model`` from a checkpoint trained with a smaller vocabulary.

    Tensors of equal shape are copied; an embedding / output matrix whose first
    dimension grew (a codec added tokens after the checkpoint's vocabulary) gets
    the checkpoint's rows and keeps its fresh initialisation for the new rows.
    Returns the names left untouched (``missing``, e.g. the codec's own modules)
    and those the model has no use for (``unexpected``).
    """
    path = Path(checkpoint)
    state = export_state(path, model)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    with torch.no_grad():
        for key, value in state.items():
            if key not in own:
                continue
            target = own[key]
            if target.shape == value.shape:
                target.copy_(value)
            elif (
                target.dim() == value.dim()
                and target.shape[1:] == value.shape[1:]
                and target.shape[0] > value.shape[0]
            ):
                target[: value.shape[0]].copy_(value)
            else:
                raise ValueError(
                    f"{path}: {key} has shape {tuple(value.shape)}, model has {tuple(target.shape)}"
                )
    return {"missing": missing, "unexpected": unexpected}


def carry_over(base: str | Path, export: str | Path) -> list[str]:
    """Add to the exported folder ``export`` every tensor outside the LLM of
    ``base`` (a folder or ``.safetensors`` file) that it does not hold, so a
    chain of stages ends in one checkpoint with all of their parts (e.g. a
    proposer's stage followed by a visual tokenizer's). Returns the names added."""
    base, target = Path(base), Path(export) / WEIGHTS
    earlier = read_safetensors(base / WEIGHTS if base.is_dir() else base)
    state = read_safetensors(target)
    added = sorted(k for k in earlier if k not in state and not k.startswith("llm."))
    if added:
        save_file({**state, **{k: earlier[k] for k in added}}, str(target))
    return added


def exported_config(path: str | Path, overrides: Mapping | None = None) -> dict:
    """:func:`read_export_config` with dotted ``overrides`` merged in (e.g.
    ``{"codec.refine": False}``, as ``--cfg-options`` writes them)."""
    from mmengine.config import Config

    cfg = Config({"model": read_export_config(path)})
    cfg.merge_from_dict({f"model.{k}": v for k, v in (overrides or {}).items()})
    return cfg.to_dict()["model"]


def build_exported(path: str | Path, overrides: Mapping | None = None) -> torch.nn.Module:
    """The model of export folder ``path``, built from its JSON config (with
    :func:`exported_config`'s ``overrides``) with its weights loaded (each
    read once; no code in the folder runs)."""
    from mmengine.registry import DefaultScope

    from ..registry import MODELS, SCOPE

    cfg = exported_config(path, overrides)
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(cfg)
    load_export_weights(model, path)
    return model
