"""Training settings: the paper's defaults and the learning-rate schedule (x0.16 every 30 epochs)."""
import pytest

from model.config import TrainConfig, learning_rate_at

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_schedule_steps_by_016_every_30_epochs():
    assert learning_rate_at(0) == pytest.approx(0.001)
    assert learning_rate_at(29) == pytest.approx(0.001)
    assert learning_rate_at(30) == pytest.approx(0.001 * 0.16)
    assert learning_rate_at(59) == pytest.approx(0.001 * 0.16)
    assert learning_rate_at(60) == pytest.approx(0.001 * 0.16**2)
    assert learning_rate_at(90) == pytest.approx(0.001 * 0.16**3)


def test_schedule_follows_the_config():
    config = TrainConfig(learning_rate=0.01, lr_decay_factor=0.5, lr_decay_epochs=2)
    assert [learning_rate_at(e, config) for e in range(5)] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


def test_defaults_are_the_papers():
    config = TrainConfig()
    assert (config.learning_rate, config.rho, config.momentum, config.epsilon) == (0.001, 0.9, 0.9, 0.1)
    assert (config.lr_decay_factor, config.lr_decay_epochs) == (0.16, 30)
    assert (config.batch_size, config.val_batch_size, config.image_size) == (60, 100, 299)
    assert config.arch == "idfnp" and config.weights == "imagenet"
    assert config.problems() == []


def test_problems_are_sentences():
    problems = TrainConfig(arch="idfnp", image_size=64, fold=1, cv=True, mixed_precision="maybe").problems()
    assert any("too small for idfnp" in p for p in problems)
    assert any("--fold and --cv" in p for p in problems)
    assert any("--mixed-precision" in p for p in problems)


def test_config_round_trips_through_json_values():
    config = TrainConfig(arch="deepid", fold=3, deepid_size=(40, 32))
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_optimizer_and_scheduler_callback_use_the_papers_values():
    import keras

    from model.trainer import ScheduleFromConfig, make_optimizer

    optimizer = make_optimizer(TrainConfig())
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 0.1)
    assert float(optimizer.learning_rate) == pytest.approx(0.001)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=make_optimizer(TrainConfig()), loss="mse")
    callback = ScheduleFromConfig(TrainConfig())
    callback.set_model(model)
    for epoch, expected in [(0, 0.001), (30, 0.00016), (61, 0.001 * 0.16**2)]:
        callback.on_epoch_begin(epoch)
        assert float(model.optimizer.learning_rate) == pytest.approx(expected)


def test_xla_setting_maps_to_keras_jit_compile():
    from model.backend import jit_compile

    assert (jit_compile("on"), jit_compile("off"), jit_compile("auto")) == (True, False, "auto")
    assert TrainConfig().xla == "auto"
    assert any("--xla must be one of auto, on, off" in p for p in TrainConfig(xla="maybe").problems())


def test_resume_takes_epochs_and_xla_anew_and_keeps_the_rest(tmp_path, capsys):
    from model.cli import parser, train_settings
    from model.runs import write_json

    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "config.json", {"train": TrainConfig(arch="deepid", image_size=64, epochs=5, xla="off").to_dict(), "export": "/exports/x"})
    args = parser().parse_args(["train", "--out", str(run), "--resume", "--epochs", "9", "--xla", "on", "--image-size", "96"])
    config, export = train_settings(args)
    assert (config.epochs, config.xla, config.image_size, config.arch) == (9, "on", 64, "deepid")
    assert str(export) == "/exports/x"
    assert "ignoring image_size" in capsys.readouterr().err
