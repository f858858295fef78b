"""Registries of the ``unigrounding`` scope.

Every buildable part (codecs, decoders, proposers, models, datasets, transforms,
metrics, rewards) is registered here, as children of mmengine's root registries, so that
config ``type=`` strings resolve in the ``unigrounding`` scope. Out-of-tree
plugins register themselves when imported: installed ones (entry points) and
those named by ``--plugins`` load the first time a registry is looked up
(:mod:`unigrounding.plugins.loading`), others through ``custom_imports``. (mmengine's Runner
looks collate functions and hooks up in its root registries without switching
scope, so ``grounding_collate`` and ``ExportHook`` are registered there.)
"""

from mmengine import registry as mmengine_registry
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

SCOPE = "unigrounding"
#: imported on a registry's first lookup: loads the plugins (entry points, --plugins)
PLUGINS = "unigrounding.plugins.installed"
#: imported on a registry's first lookup: every in-tree codec package (codecs,
#: and their own stages, metrics and decoders)
PARADIGMS = "unigrounding.codecs.all"

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope=SCOPE,
    locations=["unigrounding.models", "unigrounding.rl", PARADIGMS, PLUGINS],
)
CODECS = Registry("codec", scope=SCOPE, locations=[PARADIGMS, PLUGINS])
#: an RL stage's rewards (:mod:`unigrounding.rl.rewards`; a paradigm's own in its package)
REWARDS = Registry("reward", scope=SCOPE, locations=["unigrounding.rl", PARADIGMS, PLUGINS])
DECODERS = Registry("decoder", scope=SCOPE, locations=["unigrounding.decoders", PARADIGMS, PLUGINS])
PROPOSERS = Registry(
    "proposer", scope=SCOPE, locations=["unigrounding.proposers", PARADIGMS, PLUGINS]
)
DATASETS = Registry(
    "dataset",
    parent=MMENGINE_DATASETS,
    scope=SCOPE,
    locations=["unigrounding.data", PARADIGMS, PLUGINS],
)
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=["unigrounding.data", PLUGINS]
)
METRICS = Registry(
    "metric",
    parent=MMENGINE_METRICS,
    scope=SCOPE,
    locations=["unigrounding.evaluation", PARADIGMS, PLUGINS],
)

#: This scope's children of mmengine's other root registries (as mmdet has):
#: building a runner part (hook, loop, optimizer, sampler, ...) in the
#: ``unigrounding`` scope then finds this scope's registry — and through it
#: mmengine's parts — instead of warning that the scope has none.
RUNNER_PARTS = {
    name: Registry(
        getattr(mmengine_registry, name).name,
        parent=getattr(mmengine_registry, name),
        scope=SCOPE,
    )
    for name in (
        "RUNNERS",
        "RUNNER_CONSTRUCTORS",
        "LOOPS",
        "HOOKS",
        "STRATEGIES",
        "DATA_SAMPLERS",
        "MODEL_WRAPPERS",
        "WEIGHT_INITIALIZERS",
        "OPTIMIZERS",
        "OPTIM_WRAPPERS",
        "OPTIM_WRAPPER_CONSTRUCTORS",
        "PARAM_SCHEDULERS",
        "EVALUATOR",
        "TASK_UTILS",
        "VISUALIZERS",
        "VISBACKENDS",
        "LOG_PROCESSORS",
        "INFERENCERS",
        "FUNCTIONS",
    )
}
