"""The `flan-ul2r` dispatcher and gin parsing (flan_ul2r/gin_utils.py: the one place gin is parsed)."""
import gin
import pytest

import flan_ul2r.tasks
from flan_ul2r import cli, gin_utils
from tests.test_train_cli import SMOKE


@pytest.fixture
def gin_restored():
    """A verb run in this process parses gin and registers the built-in tasks under it: afterwards the
    defaults are registered again, for the tests that run next in this process."""
    gin.clear_config()
    yield
    gin.clear_config()
    flan_ul2r.tasks.register_after_gin()


def test_unknown_verb_names_the_known_ones(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "'trian'" in err and "train" in err and "inspect" in err


def test_help_lists_every_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in cli.VERBS:
        assert verb in out


@pytest.mark.slow
@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_has_help_with_usage_and_an_example(verb, capsys):
    try:
        code = cli.main([verb, "--help"])
    except SystemExit as e:  # argparse exits after printing help
        code = e.code
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("usage: flan-ul2r " + verb)
    assert "example" in out and f"flan-ul2r {verb} " in out.split("example", 1)[1]


def test_train_help_names_the_required_macros(capsys):
    assert cli.main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for macro in ("MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS", "TRAIN_STEPS", "MODEL_DIR"):
        assert macro in out


def test_gin_typo_names_file_and_line(tmp_path, capsys, gin_restored):
    bad = tmp_path / "typo.gin"
    bad.write_text("RunConfig.batch_size = 4\nRunConfig.trian_steps = 3\n")
    assert cli.main(["train", "--gin_file=gin/runs/ul2r.gin", f"--gin_file={bad}",
                     f"--gin.MODEL_DIR={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "trian_steps" in err and "typo.gin" in err and "line 2" in err


def test_missing_required_macro_is_named(tmp_path, capsys, gin_restored):
    assert cli.main(["train", *SMOKE, f"--gin.MODEL_DIR={tmp_path}"]) == 2
    assert "TRAIN_STEPS" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_verbs_run_with_accelerators_hidden_from_tensorflow(monkeypatch):
    """The dispatcher hides GPUs and TPUs from TF before the verb's module is even imported."""
    import importlib
    import types

    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind: calls.append((devices, kind)))
    fake = types.SimpleNamespace(main=lambda argv: calls.append(("verb ran", argv)) or 0)
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name: fake if name == cli.VERBS["inspect"][0] else real_import(name))
    assert cli.main(["inspect", "--vocab", "byte"]) == 0
    assert calls == [([], "GPU"), ([], "TPU"), ("verb ran", ["--vocab", "byte"])]


@pytest.mark.parametrize("outcome, collections", [(0, 0), (3, 1), ("config error", 1)])
def test_only_a_failed_verb_pays_for_a_full_collection(outcome, collections, monkeypatch, capsys):
    """A failed verb's traceback can keep a tf.data pipeline alive in reference cycles, which would hang the
    process at exit: the dispatcher collects them. A verb that succeeded leaves nothing of the kind, and a
    full collection costs up to a second in a process that holds TF and JAX: it is skipped."""
    import gc
    import importlib
    import types

    from flan_ul2r.errors import ConfigError

    def verb(argv):
        if outcome == "config error":
            raise ConfigError("--gin.X: not a thing")
        return outcome

    real_import, collected = importlib.import_module, []
    monkeypatch.setattr(importlib, "import_module", lambda name: types.SimpleNamespace(main=verb)
                        if name == cli.VERBS["inspect"][0] else real_import(name))
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(a) or 0)
    assert cli.main(["inspect"]) == (2 if outcome == "config error" else outcome)
    assert len(collected) == collections
    if outcome == "config error":
        assert "flan-ul2r inspect: --gin.X: not a thing" in capsys.readouterr().err


@pytest.mark.parametrize(
    "binding, expected",
    [
        ("MODEL_DIR=/tmp/run", "MODEL_DIR='/tmp/run'"),
        ('MODEL_DIR="/tmp/run"', 'MODEL_DIR="/tmp/run"'),
        ("TRAIN_STEPS=100", "TRAIN_STEPS=100"),
        ("LR=-1e-3", "LR=-1e-3"),
        ("TASK_FEATURE_LENGTHS={'inputs': 8}", "TASK_FEATURE_LENGTHS={'inputs': 8}"),
        ("USE_X=True", "USE_X=True"),
        ("F=@foo()", "F=@foo()"),
    ],
)
def test_bare_words_are_quoted_literals_are_not(binding, expected):
    assert gin_utils._quote_bare(binding) == expected


def test_split_gin_args_takes_both_spellings():
    files, bindings, rest = gin_utils.split_gin_args(
        ["--gin_file=a.gin", "--gin_file", "b.gin", "--gin.X=1", "--gin_bindings", "Y=2", "--other", "v"])
    assert files == ["a.gin", "b.gin"]
    assert bindings == ["X=1", "Y=2"]
    assert rest == ["--other", "v"]


@pytest.mark.slow
def test_missing_gin_file_names_it_and_exits_2(tmp_path, capsys):
    from flan_ul2r.cli import main
    from flan_ul2r.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such.gin"):
        gin_utils.parse_gin([str(tmp_path / "no_such.gin")], [])
    for verb in ("train", "eval", "pipeline"):  # the README's table: bad arguments exit 2
        assert main([verb, f"--gin_file={tmp_path / 'no_such.gin'}"]) == 2, verb
        assert "no_such.gin: no such file" in capsys.readouterr().err


def test_gin_typo_reports_file_and_line(tmp_path):
    @gin.configurable("cli_test_fn")
    def fn(steps=1):
        return steps

    cfg = tmp_path / "run.gin"
    cfg.write_text("cli_test_fn.steps = 3\ncli_test_fn.stesp = 4\n")
    gin.clear_config()
    try:
        with pytest.raises(ValueError) as info:
            gin_utils.parse_gin([str(cfg)], [], finalize=False)
        msg = str(info.value)
        assert "stesp" in msg and "run.gin" in msg and "2" in msg
    finally:
        gin.clear_config()
