import re

from click.testing import CliRunner

from srtbench import __version__
from srtbench.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_every_subcommand_with_a_purpose():
    out = run("--help")
    assert out.exit_code == 0
    commands = re.findall(r"^  (\w[\w-]*)\s{2,}(\S.*)$", out.output.split("Commands:")[1], re.M)
    assert {"data", "models", "threats"} <= {c for c, _ in commands}
    assert all(purpose for _, purpose in commands)


def test_version():
    assert __version__ in run("--version").output


def test_data_info_on_real_fashion_mnist(fmnist_train):
    out = run("data", "info", "fashion-mnist")
    assert out.exit_code == 0, out.output
    assert "labeled 10000 + unlabeled 50000" in out.output
    assert "Ankle boot" in out.output


def test_data_info_missing_dataset_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("SRTBENCH_DATA", raising=False)
    out = run("data", "info", "mnist", "--data-dir", str(tmp_path))
    assert out.exit_code == 2
    assert out.output.count("\n") == 1 and out.output.startswith("error: dataset 'mnist' not found")


def test_bad_split_is_one_line_exit_2(fmnist_train):
    out = run("data", "info", "fashion-mnist", "--n-labeled", "70000")
    assert out.exit_code == 2 and out.output.startswith("error:") and out.output.count("\n") == 1
