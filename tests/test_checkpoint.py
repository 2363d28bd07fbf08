import os

import pytest
import torch

from srtbench import checkpoint
from srtbench.data import DATASETS
from srtbench.errors import SrtbenchError
from srtbench.models import create_model


def make(tmp_path, name="small-cnn", resume=None):
    spec = DATASETS.get("fashion-mnist")
    model = create_model(name, spec.shape, 10)
    meta = {**checkpoint.model_meta(name, spec), "defense": "standard", "epoch": 3, "metrics": {"clean": 0.9}}
    resume = {"rng": torch.get_rng_state(), "epoch": 3} if resume is None else resume
    path = checkpoint.save(tmp_path / "m.pt", model, meta, resume=resume)
    return model, path


def test_round_trip_restores_weights_and_metadata(tmp_path):
    model, path = make(tmp_path)
    ck = checkpoint.load(path)
    rebuilt = ck.build_model()
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k
    assert ck.meta["epoch"] == 3 and ck.meta["metrics"] == {"clean": 0.9}
    assert ck.meta["srtbench_version"] and "git_commit" in ck.meta


def test_saved_rng_states_are_the_ones_at_save_time_and_replay_on_resume(tmp_path):
    with torch.random.fork_rng():
        gen = torch.Generator().manual_seed(7)
        torch.rand(3), torch.rand(3, generator=gen)  # the run has drawn some numbers already
        state = {"rng": torch.get_rng_state(), "gen": gen.get_state(), "epoch": 3}
        following = torch.rand(5), torch.rand(5, generator=gen)  # what the run draws next
        make(tmp_path, resume=state)  # (building the model draws from the global RNG too)
        torch.rand(100), torch.rand(100, generator=gen)  # both RNGs move on before the resume
        resume = checkpoint.load(tmp_path / "m.pt").resume
        assert torch.equal(resume["rng"], state["rng"]) and torch.equal(resume["gen"], state["gen"])
        assert not torch.equal(resume["rng"], torch.get_rng_state())  # a later state would not do
        torch.set_rng_state(resume["rng"])
        restored = torch.Generator()
        restored.set_state(resume["gen"])
        assert torch.equal(torch.rand(5), following[0]) and torch.equal(torch.rand(5, generator=restored), following[1])


def test_loads_with_weights_only(tmp_path):
    _, path = make(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "srtbench-checkpoint"


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    _, path = make(tmp_path)
    before = path.read_bytes()

    def broken_save(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SrtbenchError, match=r"cannot write .*m\.pt: disk full; the previous file, if any, is kept"):
        make(tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/srtbench-pwned",))


def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    _, good = make(tmp_path)
    corrupt.write_bytes(good.read_bytes()[:500])
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "srtbench-checkpoint", "x": Evil()}, evil)
    return {
        "missing": (tmp_path / "nope.pt", "no such checkpoint"),
        "corrupt": (corrupt, "corrupt"),
        "text": (text, "corrupt"),
        "foreign": (foreign, "not an srtbench checkpoint"),
        "evil": (evil, "run code from the file"),
    }


@pytest.mark.parametrize("kind", ["missing", "corrupt", "text", "foreign", "evil"])
def test_bad_files_give_one_line_errors(tmp_path, kind):
    path, words = bad_files(tmp_path)[kind]
    with pytest.raises(SrtbenchError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and words in msg
    assert not os.path.exists("/tmp/srtbench-pwned")


def test_other_architecture_is_a_one_line_error(tmp_path):
    _, path = make(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["model"] = "resnet-spatial"
    torch.save(payload, path)
    with pytest.raises(SrtbenchError, match="weights do not fit model 'resnet-spatial'"):
        checkpoint.load(path).build_model()


def test_commit_of_a_copied_tree_comes_from_the_environment(monkeypatch, tmp_path):
    """A tree copied to a remote machine may have no .git, or a stale one: the commit its copier named wins."""
    import subprocess

    from srtbench import runtime

    def no_git(*args, **kwargs):
        return subprocess.CompletedProcess(args, 128, "", "fatal: not a git repository")

    monkeypatch.setattr(runtime.subprocess, "run", no_git)
    monkeypatch.delenv("SRTBENCH_GIT_COMMIT", raising=False)
    assert runtime.git_commit() == ""
    monkeypatch.setenv("SRTBENCH_GIT_COMMIT", "abc123")
    assert runtime.git_commit() == "abc123"
    monkeypatch.undo()
    monkeypatch.setenv("SRTBENCH_GIT_COMMIT", "abc123")  # a checkout's own HEAD does not override it either
    assert runtime.git_commit() == "abc123"


def test_device_label_names_the_card(monkeypatch):
    from srtbench.runtime import device_label

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_label(torch.device("cuda", 0)) == "cuda:0 (NVIDIA H200)"
    assert device_label(torch.device("cpu")) == "cpu"


def test_evaluation_on_cuda_turns_tf32_off():
    from srtbench.runtime import exact_fp32

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        exact_fp32(torch.device("cpu"))
        assert cudnn.allow_tf32  # nothing to do on the CPU
        exact_fp32(torch.device("cuda", 0))
        assert not cudnn.allow_tf32 and not matmul.allow_tf32
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before
