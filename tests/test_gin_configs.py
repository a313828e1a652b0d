"""Every gin file parses; model gins spell out the published shapes; run + model + smoke compose."""
from pathlib import Path

import gin
import pytest

import flan_ul2r.main.train  # noqa: F401  (registers the typed configs)
import flan_ul2r.tasks
from flan_ul2r.gin_utils import parse_gin
from flan_ul2r.models.config import PRESETS, ModelConfig
from flan_ul2r.training.config import CheckpointConfig, MeshConfig, ModelSpec, OptimizerConfig, RunConfig

GIN = Path(__file__).resolve().parent.parent / "flan_ul2r" / "gin"
ALL = sorted(str(p.relative_to(GIN.parent)) for p in GIN.rglob("*.gin"))


@pytest.fixture(autouse=True)
def _clean_gin():
    flan_ul2r.tasks.import_all()
    gin.clear_config()
    yield
    gin.clear_config()


def test_there_are_gin_files():
    assert {"gin/runs/train.gin", "gin/runs/ul2r.gin", "gin/models/tiny.gin"} <= set(ALL)


@pytest.mark.parametrize("path", ALL)
def test_every_gin_file_parses(path):
    parse_gin([path], [], finalize=False)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_gins_name_their_preset(name):
    """One source of each shape: the gin names models/config.py's preset and spells out no field."""
    parse_gin([f"gin/models/{name}.gin"], [], finalize=False)
    spec = gin.get_configurable(ModelSpec)()
    assert spec.shape == ModelConfig(**PRESETS[name])
    assert "ModelConfig." not in (GIN / "models" / f"{name}.gin").read_text()


def test_a_model_gin_field_is_overridden_on_top_of_its_preset():
    parse_gin(["gin/models/llama3_8b.gin"], ["model_preset.num_layers = 2", "model_preset.d_ff = 64"],
              finalize=False)
    shape = gin.get_configurable(ModelSpec)().shape
    assert shape == ModelConfig(**{**PRESETS["llama3_8b"], "num_layers": 2, "d_ff": 64})
    gin.clear_config()
    parse_gin(["gin/models/tiny.gin"], ["model_preset.num_layer = 2"], finalize=False)
    with pytest.raises(TypeError, match="num_layer"):
        gin.get_configurable(ModelSpec)()


def test_run_model_smoke_compose_into_typed_configs():
    parse_gin(["gin/runs/ul2r.gin", "gin/models/tiny.gin", "gin/runs/cpu_smoke.gin",
               "gin/partitioning/fsdp.gin"], ["MODEL_DIR='/tmp/x'", "TRAIN_STEPS=7"], finalize=False)
    assert gin.query_parameter("%TASK_FEATURE_LENGTHS") == {"inputs": 128, "targets": 128}
    assert gin.query_parameter("%BATCH_SIZE") == 8  # cpu_smoke.gin, included last, wins
    assert gin.query_parameter("%TRAIN_STEPS") == 7
    opt = gin.get_configurable(OptimizerConfig)()
    assert (opt.name, opt.schedule, opt.learning_rate) == ("adafactor", "cosine", 3e-3)
    assert opt.final_learning_rate == 1e-6
    mesh = gin.get_configurable(MeshConfig)()
    assert (mesh.data, mesh.fsdp, mesh.rules) == (1, -1, "fsdp")
    assert gin.get_configurable(CheckpointConfig)().period == 1000


def test_train_and_the_pipelines_bind_one_runconfig_by_the_same_field_names():
    """`train` runs the RunConfig that runs/train.gin fills from the t5x macros, and a field is overridden
    as `RunConfig.<field>`; a pipeline binds the same configurable per stage, `<stage>/RunConfig.<field>`.
    A field neither gin file binds keeps the dataclass default in both."""
    parse_gin(["gin/runs/ul2r.gin", "gin/models/tiny.gin", "gin/runs/cpu_smoke.gin"],
              ["MODEL_DIR='/tmp/x'", "TRAIN_STEPS=7", "RunConfig.chunked_loss=True"], finalize=False)
    cfg = gin.query_parameter("train.config").scoped_configurable_fn()
    assert isinstance(cfg, RunConfig)
    assert (cfg.model_dir, cfg.mixture_or_task_name, cfg.train_steps) == ("/tmp/x", "ul2r", 7)
    assert cfg.batch_size == 8  # cpu_smoke.gin's BATCH_SIZE
    assert dict(cfg.task_feature_lengths) == {"inputs": 128, "targets": 128}
    assert cfg.chunked_loss is True and cfg.z_loss == RunConfig.z_loss
    assert (cfg.optimizer.name, cfg.optimizer.learning_rate) == ("adafactor", 3e-3)
    assert cfg.model.shape.num_layers == ModelConfig(**PRESETS["tiny"]).num_layers
    gin.clear_config()
    parse_gin(["gin/pipelines/smoke.gin"], ["ul2r/RunConfig.chunked_loss=True"], finalize=False)
    stages = {s: gin.query_parameter(f"pipeline.{s}").scoped_configurable_fn() for s in ("ul2r", "flan")}
    assert stages["ul2r"].chunked_loss is True and stages["flan"].chunked_loss is None
    assert (stages["ul2r"].mixture_or_task_name, stages["flan"].mixture_or_task_name) == ("ul2r", "flan")


def test_model_gin_that_disagrees_with_the_checkpoint_names_the_field():
    spec = ModelSpec(shape=ModelConfig(**PRESETS["tiny"]), dtype="bfloat16")
    stored = ModelConfig(**{**PRESETS["tiny"], "num_layers": 3}).to_dict()
    with pytest.raises(ValueError, match=r"num_layers=2 in the model gin but 3 in the checkpoint"):
        spec.resolve(stored, "/ckpt/x")
    same = ModelConfig(**PRESETS["tiny"]).replace(dtype="float32").to_dict()
    assert spec.resolve(same, "/ckpt/x").dtype == "bfloat16"  # runtime fields may differ; they apply
    with pytest.raises(ValueError, match="no model"):
        ModelSpec().resolve(None)


def test_an_unscoped_binding_that_a_stage_scope_hides_is_refused_with_the_scoped_names():
    """smoke.gin binds each stage's optimizer in its scope: gin would let `ul2r/OptimizerConfig.learning_rate`
    win over the user's unscoped `OptimizerConfig.learning_rate`, so the run would ignore it."""
    from flan_ul2r.errors import ConfigError

    with pytest.raises(ConfigError, match=r"OptimizerConfig\.learning_rate=1e-2: .*base/OptimizerConfig"
                       r"\.learning_rate, flan/OptimizerConfig\.learning_rate, ul2r/OptimizerConfig"):
        parse_gin(["gin/pipelines/smoke.gin"], ["OptimizerConfig.learning_rate=1e-2"], finalize=False)
    gin.clear_config()
    parse_gin(["gin/pipelines/smoke.gin"], ["ul2r/OptimizerConfig.learning_rate=1e-2"], finalize=False)
    with gin.config_scope("ul2r"):
        assert gin.get_configurable(OptimizerConfig)().learning_rate == 1e-2
    with gin.config_scope("flan"):
        assert gin.get_configurable(OptimizerConfig)().learning_rate == 1e-3  # FLAN_LEARNING_RATE
    gin.clear_config()  # a field no scope binds still takes the unscoped binding
    parse_gin(["gin/pipelines/smoke.gin"], ["OptimizerConfig.weight_decay=0.5"], finalize=False)
    with gin.config_scope("flan"):
        assert gin.get_configurable(OptimizerConfig)().weight_decay == 0.5


def test_a_macro_no_gin_file_refers_to_is_refused_and_the_used_ones_are_listed():
    from flan_ul2r.errors import ConfigError

    with pytest.raises(ConfigError, match=r"LEARNING_RATE=3e-3: no gin file .* refers to the macro "
                       r"LEARNING_RATE .*FLAN_LEARNING_RATE"):
        parse_gin(["gin/pipelines/smoke.gin"], ["LEARNING_RATE=3e-3"], finalize=False)
    gin.clear_config()
    parse_gin(["gin/runs/ul2r.gin", "gin/models/tiny.gin"], ["LEARNING_RATE=3e-3"], finalize=False)
    assert gin.get_configurable(OptimizerConfig)().learning_rate == 3e-3  # runs/train.gin uses it


@pytest.mark.parametrize("stage", ["ul2r", "flan"])
def test_the_hf_pipelines_stages_are_the_run_gins_recipes(stage):
    """pipelines/hf_model.gin binds its stages in scopes (a pipeline holds two runs), runs/{ul2r,flan}.gin
    with train.gin's macros: the two spellings of each recipe must not drift apart. The one difference is
    deliberate: the Flan learning rate of the 8B-class models the HF pipeline targets (Chung et al. 2022,
    Table 22: 3e-3 at 8B/62B, 1e-3 at 540B, the run gin's default)."""
    import dataclasses

    def recipe(optimizer, checkpoint, mixture, lengths, batch):
        fields = dataclasses.asdict(optimizer)
        if stage == "flan":
            del fields["learning_rate"]
        return {"optimizer": fields,
                "checkpoint_period": checkpoint.period, "mixture": mixture, "lengths": dict(lengths),
                "batch_size": batch}

    parse_gin([f"gin/runs/{stage}.gin"], [], finalize=False)
    run = recipe(gin.get_configurable(OptimizerConfig)(), gin.get_configurable(CheckpointConfig)(),
                 *(gin.query_parameter(f"%{m}") for m in ("MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS",
                                                          "BATCH_SIZE")))
    gin.clear_config()
    parse_gin(["gin/pipelines/hf_model.gin"], [], finalize=False)
    with gin.config_scope(stage):
        pipe = recipe(gin.get_configurable(OptimizerConfig)(), gin.get_configurable(CheckpointConfig)(),
                      *(_value(gin.query_parameter(f"{stage}/RunConfig.{f}"))
                        for f in ("mixture_or_task_name", "task_feature_lengths", "batch_size")))
    assert pipe == run


def _value(bound):
    """A queried binding with a `%MACRO` reference resolved."""
    if isinstance(bound, gin.config.ConfigurableReference):
        return gin.query_parameter("%" + bound.scoped_selector.rsplit("/", 1)[0])
    return bound
