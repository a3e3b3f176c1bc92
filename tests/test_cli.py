"""The command line as a user types it: processes of their own (quick ones forked: forked_cli.py), exit codes."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from forked_cli import run_command
from sqlalchemy.engine import make_url


def sweeper(*args, cwd=None, env=None):
    """``python -m sweeper.cli ARGS``; a sweep as a process of its own, a quicker command forked (forked_cli.py)."""
    env = {**(env or os.environ), "COLUMNS": "200"}
    if args and args[0] in ("run", "resume", "dashboard"):  # Ray, a server: nothing shared with a parent
        return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], capture_output=True, text=True, cwd=cwd,
                              timeout=300, env=env)
    return run_command(list(args), cwd or os.getcwd(), env, preload=("torch", "torch._dynamo"))


def test_train_prints_a_line_per_epoch_and_final_metrics(tmp_path):
    proc = sweeper("train", "--set", "dataset.classes=20", "--set", "epochs=3", "--set",
                   "dataset.samples_per_class=6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/3", "2/3", "3/3"]
    assert "val_top3" in lines[0] and "samples/s" in lines[0]
    assert any(line.startswith("final:") and "test_top3" in line for line in lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP], ids=lambda s: s.name)
def test_train_stopped_by_sigterm_exits_as_ctrl_c_does(tmp_path, signum):
    """``timeout``, ``kill`` and batch schedulers send SIGTERM: train ended with 143 where run exits 130; Slurm's
    warning before its time limit (SIGUSR1) and a closed terminal (SIGHUP) stop it the same way."""
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "train", "--set", "epochs=5000", "--set",
                             "dataset.classes=20", "--set", "dataset.samples_per_class=6"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("epoch")  # training, past its imports
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()  # a failed test's training: 5000 epochs, which would load the machine for the rest of the suite
    assert proc.stderr is not None and proc.stderr.read() == "interrupted (without --checkpoint-dir it saved nothing)\n"


def test_train_resuming_an_empty_checkpoint_says_so_not_aborted(tmp_path):
    """An empty state.pt (a machine lost before the file reached the disk): torch.load's EOFError, which click takes
    for a closed stdin, and ``sweeper train --checkpoint-dir`` printed "Aborted." with exit 1."""
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "state.pt").write_bytes(b"")
    proc = sweeper("train", "--set", "dataset.classes=5", "--set", "epochs=1", "--set", "dataset.samples_per_class=4",
                   "--checkpoint-dir", "ck", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    said = "error: ck/state.pt cannot be read as a checkpoint, cut short or damaged (EOFError"
    assert proc.stderr.startswith(said), proc.stderr


def test_train_gives_the_function_a_checkpoint_dir_that_exists(tmp_path):
    """As a trial's: a function that saves into it without making it (torch.save makes no parents) failed."""
    (tmp_path / "saves.py").write_text(
        "import os\n\n\ndef fit(config, report, checkpoint_dir):\n"
        "    with open(os.path.join(checkpoint_dir, 'state.txt'), 'w') as f:\n        f.write('1')\n"
        "    report({'epoch': 1, 'score': 0.5})\n    return {'score': 0.5}\n")
    (tmp_path / "saves.yaml").write_text("entrypoint: saves:fit\nobjective: {metric: score, direction: maximize}\n"
                                         "params: {x: {type: float, low: 0.0, high: 1.0}}\n")
    proc = sweeper("train", "saves.yaml", "--checkpoint-dir", "ck/run1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ck" / "run1" / "state.txt").read_text() == "1"
    seeds = sweeper("train", "saves.yaml", "--checkpoint-dir", "ck2", "--seeds", "1,2", cwd=tmp_path)
    assert seeds.returncode == 0, seeds.stderr
    assert (tmp_path / "ck2" / "seed-2" / "state.txt").is_file()
    (tmp_path / "ck3").mkdir()  # a seed's folder that is a file: said before any seed trains, not a traceback after
    (tmp_path / "ck3" / "seed-2").write_text("")
    clash = sweeper("train", "saves.yaml", "--checkpoint-dir", "ck3", "--seeds", "1,2", cwd=tmp_path)
    assert clash.returncode == 2 and clash.stdout == "", clash.stdout + clash.stderr
    assert "error: --checkpoint-dir: ck3/seed-2 is a file, not a folder" in clash.stderr


def test_train_resumed_from_its_checkpoint_says_so_instead_of_printing_its_old_epochs(tmp_path):
    args = ["train", "--set", "epochs=8", "--set", "dataset.classes=20", "--set", "dataset.samples_per_class=6",
            "--checkpoint-dir", "ck"]
    first = subprocess.Popen([sys.executable, "-m", "sweeper.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    assert first.stdout is not None and first.stdout.readline().startswith("epoch 1/8")
    first.send_signal(signal.SIGTERM)
    _, said = first.communicate(timeout=60)
    assert first.returncode == 130 and said == "interrupted: the same command resumes it from ck\n", said
    again = sweeper(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    done = int(lines[0].removeprefix("resumed from ck after epoch "))  # the epochs the first run checkpointed
    epochs = [int(line.split()[1].split("/")[0]) for line in lines if line.startswith("epoch")]
    assert epochs == list(range(done + 1, 9)), again.stdout  # each epoch printed once, as it trains


def test_a_log_that_is_not_utf8_gets_escapes_not_an_error(tmp_path):
    (tmp_path / "uni.yaml").write_text("baseline: {source: \"seeds/000 \u2013 before smoothing\", test_top3: 75%}\n"
                                       "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n", encoding="utf-8")
    proc = sweeper("validate", "uni.yaml", cwd=tmp_path, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and "seeds/000 \\u2013 before smoothing" in proc.stdout, proc.stderr


SIGNAL_AS_THE_DRIVER_LOADS = """
import os, sys

signum = int(sys.argv[1])

class SignalOnImport:  # a stop signal while `sweeper run` imports its driver (Optuna, pydantic): a second or more
    def find_spec(self, name, path=None, target=None):
        if name == "sweeper.driver":
            os.kill(os.getpid(), signum)
        return None

sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["sweeper", *sys.argv[2:]]
from sweeper.cli import main
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_stop_signal_while_sweeper_run_loads_exits_130_and_starts_nothing(tmp_path, signum):
    """Before ``sweeper run`` took the stop signals over, a SIGTERM ended it at once (exit -15) and a Ctrl-C raised
    inside the driver's imports, where pydantic turned it into a SchemaError: a traceback and exit 1."""
    db = tmp_path / "sweeps.db"
    proc = subprocess.run([sys.executable, "-c", SIGNAL_AS_THE_DRIVER_LOADS, str(int(signum)), "run",
                           "spaces/asl20.yaml", "--quick", "--storage", f"sqlite:///{db}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "interrupted:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not db.exists() and not (tmp_path / "sweeper_runs").exists()


def test_a_second_signal_while_the_driver_leaves_does_not_cut_its_writes_short():
    code = ("import os, signal, threading, time\nfrom sweeper.interrupts import leaving, noting_interrupts\n"
            "flag = threading.Event()\nwith noting_interrupts(flag):\n"
            "    try:\n        os.kill(os.getpid(), signal.SIGINT)\n        time.sleep(1)\n"
            "    except KeyboardInterrupt:\n        print('stopping')\n"
            "    leaving()  # as the driver does before it drains its queued writes\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(0.5)\n    print('drained', flag.is_set())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["stopping", "drained", "True"], proc.stdout + proc.stderr


SECOND_SIGNAL_AS_THE_MAIN_THREAD_LEAVES = """
import os, signal, sys, threading, time
from storage.retry import OutagePolicy
from sweeper.interrupt_exit import Interrupts
from sweeper.study_writer import StudyWriter

for signum in (signal.SIGINT, signal.SIGTERM):  # as sweeper run sets them, outside the driver's noted() blocks
    signal.signal(signum, signal.default_int_handler)
writer = StudyWriter(OutagePolicy(30))
writer.submit(lambda: (time.sleep(1.0), print("written", flush=True)))  # a queued write that takes a moment
interrupts = Interrupts(writer, "sqlite:///" + sys.argv[1], lambda resume: (print("left"), os._exit(130)), "")
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()  # a second signal as it drains
interrupts.leave()  # the main thread, after fit returned on the first
"""


def test_a_second_signal_as_the_main_thread_leaves_does_not_cut_its_writes_short(tmp_path):
    """The main thread leaves once Tune's loop has ended, outside the driver's noted() blocks: the stop signals'
    handlers are sweeper run's again, and a second Ctrl-C raised KeyboardInterrupt in the drain, whose exit
    skipped the queued writes (a second Ctrl-C 5 s after the first left at once, not after the writes)."""
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_AS_THE_MAIN_THREAD_LEAVES, str(tmp_path / "s.db")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stdout.split() == ["written", "left"], proc.stdout + proc.stderr


def test_train_under_nohup_trains_on_through_a_hangup(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "train", "--set", "epochs=8", "--set",
                             "dataset.classes=20", "--set", "dataset.samples_per_class=6"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup starts it
    assert proc.stdout is not None and proc.stdout.readline().startswith("epoch 1/8")
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0 and "epoch 8/8" in out and "final:" in out, out


def test_train_of_a_function_that_prints_after_its_reader_went_away_trains_to_its_end(tmp_path):
    """`sweeper train SPACE | head -1` of a function printing much of its own: its print raised BrokenPipeError once
    8 KiB filled the buffer, a traceback and exit 1 with the training cut short; now it trains on quietly, as the
    console's lines do, and a full disk under its stdout is exit 2, as for the console's lines."""
    (tmp_path / "chatty.py").write_text(
        "import pathlib\n"
        "def fit(config, report, checkpoint_dir):\n"
        "    for epoch in (1, 2):\n"
        "        print('batch of epoch', epoch, 'x' * 60 * 2000)\n"  # past the pipe's 64 KiB, which waits on head
        "        report({'epoch': epoch, 'score': epoch / 2})\n"
        "    pathlib.Path('done').write_text('trained')\n"
        "    return {'score': 1.0}\n")
    (tmp_path / "chatty.yaml").write_text("entrypoint: chatty:fit\nobjective: {metric: score, direction: maximize}\n"
                                          "params:\n  x: {type: float, low: 0.0, high: 1.0}\n")
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "train", "chatty.yaml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("batch of epoch 1")
    proc.stdout.close()  # as head -1 leaves
    _, err = proc.communicate(timeout=240)
    assert (proc.returncode, err) == (0, "") and (tmp_path / "done").read_text() == "trained"
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            full_disk = subprocess.run([sys.executable, "-m", "sweeper.cli", "train", "chatty.yaml"], cwd=tmp_path,
                                       stdout=full, stderr=subprocess.PIPE, text=True, timeout=240)
        assert (full_disk.returncode, full_disk.stderr) == (2, "error: Cannot write to stdout: No space left on "
                                                               "device.\n")


def test_train_reads_a_space_training_block(tmp_path):
    proc = sweeper("train", "spaces/asl20.yaml", "--set", "training.epochs=1", "--set", "dataset.samples_per_class=4",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout and "20 classes" in proc.stdout


def test_train_takes_a_map_for_a_group_of_settings_as_run_does(tmp_path):
    """``--set 'dataset={classes: 5}'`` was refused by train ("names a group of settings") where run sets each key
    of the map and keeps the group's others (here the space's samples_per_class and the synthetic data)."""
    proc = sweeper("train", "spaces/asl20.yaml", "--set", "training.dataset={classes: 5}", "--set",
                   "training={epochs: 1}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout and "synthetic (seed 0, noise 1, imbalance 0): 5 classes" in proc.stdout
    run = sweeper("validate", "spaces/asl20.yaml", "--set", "training.dataset={classes: 5}", cwd=tmp_path)
    assert run.returncode == 0 and "\n    classes: 5\n    samples_per_class: 36\n" in run.stdout, run.stderr


def test_train_keeps_a_map_whole_for_a_function_that_declares_no_settings(tmp_path, monkeypatch):
    """Any key of a function that declares no settings gets the map as typed: a reproduce command writes such a
    value as one --set (``sweeper best``); a declared setting that holds a map gets its keys, as in sweeper run."""
    from sweeper.standalone import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'acc': 1.0}\n\n\n"
                                     "def declared(config, report, checkpoint_dir):\n    return {'acc': 1.0}\n\n\n"
                                     "declared.settings = {'lr': 0.1, 'opts': {'a': 0}, 'dataset.classes': 3}\n")
    for name in ("fit", "declared"):
        (tmp_path / f"{name}.yaml").write_text(f"entrypoint: own:{name}\nobjective: {{metric: acc, direction: "
                                              f"maximize}}\nparams:\n  lr: {{type: float, low: 0.01, high: 1}}\n")
    assert prepare("fit.yaml", ["opts={a: 5}"])[0].config == {"opts": {"a": 5}}
    declared = prepare("declared.yaml", ["training={opts: {a: 5}, dataset: {classes: 4}}"])[0].config
    assert declared == {"lr": 0.1, "opts": {"a": 5}, "dataset.classes": 4}


def test_train_of_a_users_function_gives_a_sampled_param_its_declared_default(tmp_path):
    """A trial always has a value for a param the space samples: train gave none (the training block and fixed
    params only), so a function reading config["lr"] failed with KeyError, where the core fills in its default."""
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    print('lr is', config['lr'])\n"
                                     "    return {'acc': config['lr']}\n\n\nfit.settings = {'lr': 0.1}\n")
    (tmp_path / "d.yaml").write_text("entrypoint: own:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     "params:\n  lr: {type: float, low: 0.01, high: 1}\n")
    proc = sweeper("train", "d.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and "lr is 0.1" in proc.stdout, proc.stderr
    assert "lr is 0.3" in sweeper("train", "d.yaml", "--set", "lr=0.3", cwd=tmp_path).stdout


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("key", ["opts", "training.opts"])
def test_a_set_map_for_a_setting_that_holds_one_sets_its_keys_in_run_validate_and_train(tmp_path, command, key):
    """``--set 'opts={a: 5}'`` was refused by run and validate ("neither a section of the space nor a setting")
    where ``training.opts=`` merged, and train replaced the map whole: one rule now, each key set, the others kept."""
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    print('opts are', config['opts'])\n"
                                     "    return {'acc': 1}\n\nfit.settings = {'lr': 0.1, 'opts': {'a': 0, 'b': 2}}\n")
    (tmp_path / "d.yaml").write_text("entrypoint: own:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     "training: {opts: {b: 3}}\nparams:\n  lr: {type: float, low: 0.01, high: 1}\n")
    proc = sweeper(command, "d.yaml", "--set", f"{key}={{a: 5}}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("opts are {'b': 3, 'a': 5}" if command == "train" else "\n    b: 3\n    a: 5\n") in proc.stdout, proc.stdout


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("expr", ["opts.a=5", "training.opts.a=5", "opts={a: 5}"])
def test_a_set_key_of_a_declared_map_the_space_does_not_set_keeps_the_maps_other_defaults(tmp_path, command, expr):
    """A space without ``opts`` and ``--set opts.a=5``: run, validate and train all gave the function ``{a: 5}``,
    so ``b`` was gone (a function merging its settings over the config merges one level): the declared map is
    where the key is set, as a space's own ``opts`` is."""
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    print('opts are', config['opts'])\n"
                                     "    return {'acc': 1}\n\nfit.settings = {'lr': 0.1, 'opts': {'a': 0, 'b': 2}}\n")
    (tmp_path / "d.yaml").write_text("entrypoint: own:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     "training: {lr: 0.2}\nparams:\n  lr: {type: float, low: 0.01, high: 1}\n")
    proc = sweeper(command, "d.yaml", "--set", expr, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("opts are {'a': 5, 'b': 2}" if command == "train" else "\n  lr: 0.2\n  opts:\n    a: 5\n    b: 2\n") \
        in proc.stdout, proc.stdout  # validate prints the training block a run's trials get


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("opts", ["null", "3"])
def test_a_set_key_of_a_declared_map_the_space_sets_to_no_map_is_read_alike_by_validate_and_train(tmp_path, command,
                                                                                                    opts):
    """``opts:`` with its keys commented out is null: ``--set opts.a=5`` gave validate and run ``{a: 5}``, the
    declared ``b`` gone, where train kept it. ``opts: 3``: validate refused it, train trained the declared map."""
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    print('opts are', config['opts'])\n"
                                     "    return {'acc': 1}\n\nfit.settings = {'lr': 0.1, 'opts': {'a': 0, 'b': 2}}\n")
    (tmp_path / "d.yaml").write_text("entrypoint: own:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     f"training: {{lr: 0.2, opts: {opts}}}\n"
                                     "params:\n  lr: {type: float, low: 0.01, high: 1}\n")
    proc = sweeper(command, "d.yaml", "--set", "opts.a=5", cwd=tmp_path)
    if opts == "3":
        assert proc.returncode == 2 and "opts is 3, not a mapping, so " in proc.stderr, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert ("opts are {'a': 5, 'b': 2}" if command == "train" else "\n  opts:\n    a: 5\n    b: 2\n") \
            in proc.stdout, proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "epochs"], "expected KEY=VALUE"),
    (["--set", "epocs=3"], "did you mean 'epochs'"),
    (["--set", "dropout=2"], "dropout=2"),
    (["--set", "dataset.name=npz", "--set", "dataset.path=missing.npz"], "missing.npz"),
    (["--set", "device=cudax"], "auto, cpu, cuda or cuda:N"),
    (["--set", "model.heads=7"], "model.heads=7 is not allowed: a divisor of the hidden size (64, model.size small's)"),
    (["--set", "model.hidden=30"], "model.hidden=30 is not allowed: a multiple of the number of heads (8)"),
    (["--set", "device=cuda:99"], "device='cuda:99': this machine has"),
    (["--checkpoint-dir", "/proc/sweeper-ck"], "cannot make a folder in /proc"),  # root may write anywhere else
    (["--set", "epochs=0", "--seeds", "3"], "refuses the training config: epochs=0"),  # the setting's fault, not 3's
    (["--set", "epochs=0"], "error: --set epochs: trials:run refuses the training config: epochs=0"),  # the flag
    (["--set", "dataset.classes=3"], "error: --set dataset.classes: trials:run refuses the training config"),
])
def test_bad_train_input_is_one_message_and_exit_2(tmp_path, args, message):
    proc = sweeper("train", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_train_whose_loss_diverges_says_why_in_one_line_and_exits_2(tmp_path):
    """A NaN loss (lr far too high) was a 30-frame traceback through typer, where a user's function whose objective
    ends NaN gets one line and exit 2: what fails every trial of the sweep."""
    proc = sweeper("train", "--set", "epochs=2", "--set", "dataset.classes=3", "--set", "objective=val_top1",
                   "--set", "dataset.samples_per_class=3", "--set", "lr=1e30", "--set", "grad_clip=0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"^error: non-finite loss \(nan\) at step \d+: lr=1e\+30 is likely too high .*; a trial of the "
                     r"sweep fails on it \(stop_reason diverged\)$", proc.stderr, re.M), proc.stderr


def test_train_over_seeds_sums_up_each_seeds_final_metrics_against_the_spaces_targets(tmp_path):
    import re
    import statistics

    import torch

    (tmp_path / "s.yaml").write_text("targets: {test_top3: 20%, train_loss: 5}\n"
                                     "training: {epochs: 2, dataset: {classes: 20, samples_per_class: 6}}\n"
                                     "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    proc = sweeper("train", "s.yaml", "--set", "seed=7", "--seeds", "1,2", "--checkpoint-dir", "ck", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("seed ")] == ["seed 1 (1 of 2)", "seed 2 (2 of 2)"]
    finals = [line for line in lines if line.startswith("final:")]
    top3 = [float(re.search(r"test_top3 ([\d.]+)%", line).group(1)) for line in finals]
    assert len(top3) == 2, proc.stdout
    row = next(line for line in lines if line.startswith("│ test_top3 "))
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[1:3] == [f"{v:.2f}%" for v in top3] and cells[6] == f"{max(top3):.2f}%", row
    assert abs(float(cells[3].rstrip("%")) - statistics.fmean(top3)) < 0.01, row
    assert abs(float(cells[4].rstrip("%")) - statistics.stdev(top3)) < 0.01, row
    assert f"test_top3 >= 20.00%: {sum(v >= 20 for v in top3)} of 2 seeds reach it" in proc.stdout
    assert "train_loss <= 5: 2 of 2 seeds reach it" in proc.stdout  # its last report's, as a sweep records it
    for seed in (1, 2):  # each seed trained as itself (--seeds beats --set seed=7), in a folder of its own
        state = torch.load(tmp_path / "ck" / f"seed-{seed}" / "state.pt", map_location="cpu", weights_only=False)
        assert state["config"]["seed"] == seed
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["seed-1", "seed-2"]


def table_rows(out: str) -> dict[str, list[str]]:
    """A rich table's rows in ``out``: the first cell's text -> the others'."""
    return {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.splitlines() if line.startswith("│ ")}


@pytest.mark.parametrize("returns", ["nothing", "acc", "nones"])
def test_train_over_seeds_of_a_users_function_judges_what_a_trial_would_record(tmp_path, returns):
    """A trial records what the function returned over its last report (all of it where it returned nothing):
    a target on a metric it only reported counts, as in a sweep. A returned None is no value: the seed lost its
    objective's last report to it (0 seeds reached a target the sweep's trial met), and its row in the table."""
    last_acc, returned = {"nothing": ("0.1 * seed", "None"), "acc": ("0.0", "{'acc': 0.1 * seed}"),
                          "nones": ("0.1 * seed", "{'acc': None, 'loss': None}")}[returns]
    (tmp_path / "seeded.py").write_text(
        "def fit(config, report, checkpoint_dir):\n"
        "    seed = config.get('seed', 0)\n"
        "    report({'epoch': 1, 'loss': 9.0, 'acc': 0.0})\n"
        f"    report({{'epoch': 2, 'loss': 1 / (seed + 1), 'acc': {last_acc}}})\n"
        f"    return {returned}\n"
        "fit.settings = {'seed': 0}\n")
    (tmp_path / "s.yaml").write_text("entrypoint: seeded:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     "targets: {loss: 0.4, acc: 25%}\nparams:\n  seed: {type: int, low: 0, high: 9}\n")
    proc = sweeper("train", "s.yaml", "--seeds", "1,2,3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert rows["loss"] == ["0.5", "0.3333", "0.25", "0.3611", "0.1273", "0.25", "0.5"], rows
    assert rows["acc"][:3] == ["10.00%", "20.00%", "30.00%"] and set(rows) == {"loss", "acc"}, rows
    assert "loss <= 0.4: 2 of 3 seeds reach it (mean 0.3611)" in proc.stdout  # minimised: at or below
    assert "acc >= 25.00%: 1 of 3 seeds reach it (mean 20.00%)" in proc.stdout


def test_train_over_seeds_sums_up_a_metric_that_is_nan_or_too_big_for_a_float(tmp_path):
    """A NaN metric beside the objective ended the table with statistics' AttributeError, exit 1, and an int past any
    float (a count of combinations) with an OverflowError, after every seed had trained."""
    (tmp_path / "odd.py").write_text(
        "def fit(config, report, checkpoint_dir):\n"
        "    report({'epoch': 1, 'acc': 0.1 * config['seed']})\n"
        "    return {'acc': 0.1 * config['seed'], 'holdout_loss': float('nan'), 'combos': 10**400}\n"
        "fit.settings = {'seed': 0}\n")
    (tmp_path / "s.yaml").write_text("entrypoint: odd:fit\nobjective: {metric: acc, direction: maximize}\n"
                                     "params:\n  seed: {type: int, low: 0, high: 9}\n")
    proc = sweeper("train", "s.yaml", "--seeds", "1,2", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = table_rows(proc.stdout)
    assert rows["holdout_loss"] == ["nan"] * 6 and rows["combos"] == ["inf", "inf", "inf", "nan", "inf", "inf"], rows
    assert rows["acc"] == ["10.00%", "20.00%", "15.00%", "7.07%", "10.00%", "20.00%"], rows


def test_train_over_seeds_keeps_a_metrics_last_value_over_a_report_without_it(tmp_path):
    """A sweep's trial keeps each reported metric's last value, a report's None being no value for that epoch
    (test_sweep's test_a_metric_reported_as_none_keeps_its_last_reported_value): sweeper train took the last report
    alone, and said 0 seeds reach a target on test_acc that every trial of the same function met in a sweep."""
    (tmp_path / "everyother.py").write_text(
        "def fit(config, report, checkpoint_dir):\n"
        "    report({'epoch': 1, 'score': 0.5 + config['seed'] / 10, 'test_acc': 0.7, 'val_acc': 0.6})\n"
        "    report({'epoch': 2, 'score': 0.6 + config['seed'] / 10, 'test_acc': None})\n"
        "fit.settings = {'seed': 0}\n")
    (tmp_path / "s.yaml").write_text("entrypoint: everyother:fit\nobjective: {metric: score, direction: maximize}\n"
                                     "targets: {test_acc: 50%, val_acc: 50%}\n"
                                     "params:\n  seed: {type: int, low: 0, high: 9}\n")
    proc = sweeper("train", "s.yaml", "--seeds", "1,2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test_acc >= 50.00%: 2 of 2 seeds reach it" in proc.stdout, proc.stdout
    assert "val_acc >= 50.00%: 2 of 2 seeds reach it" in proc.stdout, proc.stdout  # not in the last report at all


def test_train_over_seeds_in_80_columns_cuts_no_name_or_value(tmp_path):
    """A CI log's 80 columns: three seeds' table cut val_top1, val_top3 and val_top5 to one name, val_to…, and an sd
    of 1.00e-04 to 1.00e-…, another number. Where the seeds' columns do not fit, the table leaves them out: each
    seed's values are on its lines above."""
    (tmp_path / "close.py").write_text(
        "def fit(config, report, checkpoint_dir):\n"
        "    seed = config['seed']\n"
        "    report({'epoch': 1, 'val_loss': 1 + seed / 10000, 'val_top1': 0.5, 'val_top3': 0.75, 'val_top5': 1.0})\n"
        "fit.settings = {'seed': 0}\n")
    (tmp_path / "s.yaml").write_text("entrypoint: close:fit\nobjective: {metric: val_top1}\n"
                                     "params:\n  seed: {type: int, low: 0, high: 9}\n")
    proc = run_command(["train", "s.yaml", "--seeds", "1,2,3"], tmp_path, {**os.environ, "COLUMNS": "80"},
                       preload=("torch", "torch._dynamo"))
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert "…" not in proc.stdout and max(map(len, table)) <= 80, proc.stdout
    rows = table_rows(proc.stdout)
    assert set(rows) == {"val_loss", "val_top1", "val_top3", "val_top5"}, proc.stdout
    assert rows["val_loss"] == ["1", "1.00e-04", "1", "1"], proc.stdout  # mean, sd, min, max
    assert rows["val_top3"] == ["75.00%", "0.00%", "75.00%", "75.00%"], proc.stdout
    assert "final metrics over 3 seeds (per seed: in each seed's lines above)" in proc.stdout


def test_train_over_seeds_says_so_where_the_seeds_changed_nothing(tmp_path):
    (tmp_path / "unseeded.py").write_text("def fit(config, report, checkpoint_dir):\n"
                                          "    report({'epoch': 1, 'score': 0.5})\n")  # no settings: takes any key
    (tmp_path / "s.yaml").write_text("entrypoint: unseeded:fit\nobjective: {metric: score, direction: maximize}\n"
                                     "params:\n  x: {type: float, low: 0.0, high: 1.0}\n")
    proc = sweeper("train", "s.yaml", "--seeds", "1,2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note: every seed ended with the same metrics: does unseeded:fit read config['seed']?" in proc.stdout


@pytest.mark.parametrize(("seeds", "message"), [
    ("1,x", "--seeds 1,x: 'x' is not an integer; give the seeds as integers separated by commas"),
    ("4,5,4", "--seeds 4,5,4: a seed is given twice"),
    ("", "--seeds '': '' is not an integer"),
    ("--1", "--seeds --1: '--1' is not an integer"),
    ("²,3", "--seeds '²,3': '²' is not an integer"),
    ("1,2", "--seeds: noseed:fit takes no seed 1: unknown setting 'seed'"),
])
def test_bad_seeds_are_one_message_and_exit_2_before_any_training(tmp_path, seeds, message):
    (tmp_path / "noseed.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'score': 1.0}\n"
                                        "fit.settings = {'epochs': 1}\n")
    (tmp_path / "s.yaml").write_text("entrypoint: noseed:fit\nobjective: {metric: score, direction: maximize}\n"
                                     "params:\n  epochs: {type: int, low: 1, high: 2}\n")
    proc = sweeper("train", "s.yaml", "--seeds", seeds, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in " ".join(proc.stderr.split()) and "final" not in proc.stdout, proc.stderr


def test_validate_and_spaces(tmp_path):
    proc = sweeper("validate", "spaces/asl50.yaml", "--quick", cwd=tmp_path)
    assert proc.returncode == 0 and "name: asl50-quick" in proc.stdout
    listing = sweeper("spaces", cwd=tmp_path).stdout
    assert all(f"spaces/{n}.yaml" in listing for n in ("asl20", "asl50", "asl100", "nslt1000"))
    assert "local" not in listing
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in listing.splitlines()}
    assert len(starts) == 1, listing  # descriptions start in one column
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "asl50.yaml").write_text("params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    lines = {line.split()[0]: line for line in sweeper("spaces", cwd=tmp_path).stdout.splitlines()}
    assert lines["spaces/asl50.yaml"].endswith("(from here, the local spaces/asl50.yaml is used instead)")
    assert not any("local" in line for key, line in lines.items() if key != "spaces/asl50.yaml")


@pytest.mark.parametrize(("dataset", "missing"), [
    ("{name: npz, path: gone.npz}", "gone.npz: file not found"),
    ("{name: wlasl, path: .}", "nslt_100.json: split file not found"),
    ("{name: npz, path: data.yaml}", "data.yaml: cannot be read as .npz (not a zip archive"),  # every trial: FAIL
    ("{name: wlasl, path: ., split_file: data.yaml}", "data.yaml: invalid JSON (line 1"),
    ("{name: npz, path: nan.npz, classes: 5}", "nan.npz: X[3] contains NaN"),  # every trial, once each: FAIL
])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_data_the_trials_would_not_find_is_refused_before_the_sweep(tmp_path, command, dataset, missing):
    import numpy as np

    x = np.zeros((30, 8, 5, 2), dtype=np.float32)
    x[3, 2, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=x, y=np.arange(30) % 5)
    (tmp_path / "data.yaml").write_text(f"training:\n  dataset: {dataset}\n"
                                        "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    storage = ["--storage", "sqlite:///s.db"] if command == "run" else []
    proc = sweeper(command, "data.yaml", *storage, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: data.yaml: training.dataset: {missing}")
    assert not (tmp_path / "s.db").exists()


def test_a_ray_that_cannot_start_here_says_what_to_set_and_its_token_is_the_owners_alone(tmp_path):
    """Ray's sockets live under the temp folder, in at most 107 bytes: an HPC job's long scratch folder fails them.
    The token Ray writes first guards the Ray that listens on every interface: mode 0600, whatever the umask."""
    home, scratch = tmp_path / "home", tmp_path / ("scratch-" + "x" * 100)
    home.mkdir(), scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_TMPDIR", "RAY_AUTH", "RAY_ADDRESS"))}
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "asl20", "--quick", "--storage",
                           f"sqlite:///{tmp_path}/s.db"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**env, "HOME": str(home), "TMPDIR": str(scratch), "COLUMNS": "200"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: Ray cannot start with its temp folder {scratch}: its sockets' paths") \
        and "set RAY_TMPDIR to a short ASCII path" in proc.stderr, proc.stderr
    assert not (tmp_path / "s.db").exists()  # refused before the study was written
    from sweeper.ray_runtime import _private_token

    token = home / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)  # as Ray writes it under the usual umask
    os.environ["HOME"], before = str(home), os.environ["HOME"]
    try:
        _private_token()
    finally:
        os.environ["HOME"] = before
    assert token.stat().st_mode & 0o777 == 0o600


def test_a_stream_a_script_closed_is_no_failure(tmp_path):
    """``>&-`` makes sys.stdout None: the first print raised (exit 1), and a finished sweep's exit flush did too."""
    import optuna

    optuna.create_study(study_name="made", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    cases = [(">&-", args) for args in ("validate asl20", "validate nosuch", "status --format json")]
    cases += [("2>&-", "validate nosuch"), ("2>&-", "status --format json"), ("<&-", "validate asl20")]
    procs = [(closed, args, subprocess.Popen(f"{shlex.quote(sys.executable)} -m sweeper.cli {args} {closed}",
                                             shell=True, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE)) for closed, args in cases]
    for closed, args, proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == (2 if "nosuch" in args else 0) and "Traceback" not in err, (closed, args, err)


def test_a_project_with_a_trials_folder_of_its_own_still_sweeps(tmp_path):
    """Ray puts the driver's folder first on a worker's path: a trials/ folder there (even empty) stood for
    sweeper's package, and every trial failed (module 'trials' has no attribute 'run')."""
    (tmp_path / "trials").mkdir()
    proc = sweeper("run", "asl20", "--quick", "--set", "budget.trials=1", "--storage",
                   "sqlite:///s.db", cwd=tmp_path)
    assert proc.returncode == 0 and "1 COMPLETE" in proc.stdout, proc.stdout + proc.stderr


def test_validate_prints_a_storage_password_masked(tmp_path):
    url = "postgresql+psycopg://team:hunter2secret@db.example.com/sweeps"
    (tmp_path / "team.yaml").write_text(f"storage: {url}\nparams:\n  lr: {{type: float, low: 0.001, high: 0.01}}\n")
    for args in (["team.yaml"], ["spaces/asl20.yaml", "--set", f"storage={url}"]):
        proc = sweeper("validate", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "hunter2secret" not in proc.stdout and "storage: postgresql+psycopg://team:***@db.example.com/sweeps" \
            in proc.stdout
    refused = sweeper("validate", "spaces/asl20.yaml", "--set", f"storage=[{url}]", cwd=tmp_path)  # not a string
    assert refused.returncode == 2 and "storage: Input should be a valid string" in refused.stderr
    assert "hunter2secret" not in refused.stderr and "team:***@db.example.com" in refused.stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--address", "garbage"], "--address 'garbage': expected HOST:PORT of a Ray head"),
    (["--address", ""], "--address is empty; give HOST:PORT of a Ray head"),  # not a local sweep in its place
    (["--address", "127.0.0.1:1"], "--address '127.0.0.1:1': no Ray head answers there (Connection refused)"),
    (["--results-dir", "/proc/sweeper-x"], "cannot make a folder in /proc"),
    (["--max-failures", "-1"], "Invalid value for '--max-failures': -1 is out of range: give 0 to 100"),
    (["--storage-timeout", "-5"], "--storage-timeout '-5': must be a positive, finite duration"),  # not 'a duration'
    (["--storage-timeout", "inf"], "--storage-timeout 'inf': must be a positive, finite duration"),
])
def test_bad_run_flags_are_refused_before_the_study_is_written(tmp_path, flags, message):
    """Ray's own failures for these come after the study was created (and, on resume, its spec rewritten)."""
    proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--storage", "sqlite:///s.db", *flags, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "s.db").exists()


def test_storage_timeout_takes_plain_seconds_as_budget_storage_timeout_does():
    """1e3 is a number in a space (YAML 1.2) but was "expected a duration such as 90s" as the flag."""
    from sweeper.cli import _seconds

    assert [_seconds("--storage-timeout", text) for text in ("1e3", "90", "1.5", "1h30m")] == [1000, 90, 1.5, 5400]


@pytest.mark.parametrize("command", [["run", "spaces/asl20.yaml", "--quick"], ["validate", "spaces/asl20.yaml"]])
def test_storage_and_set_storage_naming_two_storages_are_refused(tmp_path, command):
    """--storage won and the --set storage=... typed beside it was dropped without a word."""
    proc = sweeper(*command, "--storage", "sqlite:///a.db", "--set",
                   "storage=postgresql+psycopg://me:hunter2secret@db/sweeps", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: --storage sqlite:///a.db and --set storage=postgresql+psycopg://me:***@db/sweeps name two " \
           "storages; give one of them" in proc.stderr and "hunter2secret" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
    same = sweeper("validate", "spaces/asl20.yaml", "--storage", "sqlite:///a.db", "--set", "storage=sqlite:///a.db",
                   cwd=tmp_path)
    assert same.returncode == 0 and "# a run would use the storage sqlite:///a.db (--storage)" in same.stdout


def test_validate_prints_the_storage_a_run_would_use(tmp_path):
    """--storage beats --set storage= beats SWEEPER_STORAGE beats the space's key: validate names the URL and where
    it came from (the environment beat a typed --set storage=URL)."""
    base = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    key = ["spaces/asl20.yaml", "--set", "storage=sqlite:///key.db"]
    (tmp_path / "keyed.yaml").write_text("storage: sqlite:///key.db\nparams: {lr: {type: float, low: 0.01, high: 1}}\n")
    for args, extra, shown in (
            (key, {}, "sqlite:///key.db (--set storage=sqlite:///key.db)"),
            (key, {"SWEEPER_STORAGE": "sqlite:///env.db"}, "sqlite:///key.db (--set storage=sqlite:///key.db)"),
            (["keyed.yaml"], {"SWEEPER_STORAGE": "sqlite:///env.db"}, "sqlite:///env.db (SWEEPER_STORAGE)"),
            (["keyed.yaml"], {}, "sqlite:///key.db (the space's storage)"),
            (["keyed.yaml", "--storage", "postgresql+psycopg://u:pw1234@h/db"], {"SWEEPER_STORAGE": "sqlite:///env.db"},
             "postgresql+psycopg://u:***@h/db (--storage)"),
            (["spaces/asl20.yaml"], {}, "sqlite:///sweeps.db (the default)")):
        proc = sweeper("validate", *args, cwd=tmp_path, env={**base, **extra})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == f"# a run would use the storage {shown}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyed.yaml"]  # nothing connected to, nothing created


@pytest.mark.parametrize("command", [["run", "team.yaml", "--quick"], ["validate", "team.yaml"], ["status"],
                                     ["dashboard"]])
def test_a_bad_storage_url_names_where_it_came_from(tmp_path, command):
    """``validate`` checks the URL that ``run`` would use, so a space that validates does not fail at ``run``; the
    dashboard names the variable as the reading commands do (it did not)."""
    (tmp_path / "team.yaml").write_text("storage: foo://bar\nparams:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    base = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    reading = command in (["status"], ["dashboard"])  # a reading command reads no space: the variable alone is wrong
    for extra, shown in (({"SWEEPER_STORAGE": "sqlite//s.db"}, "SWEEPER_STORAGE: Cannot parse storage URL") if reading
                         else ({}, "team.yaml: storage: Unsupported storage 'foo'"),
                         ({"SWEEPER_STORAGE": "bar://x"}, "SWEEPER_STORAGE: Unsupported storage 'bar'"),
                         ({"SWEEPER_STORAGE": "sqlite://"}, "SWEEPER_STORAGE: There are no studies in sqlite://" if
                          reading else "SWEEPER_STORAGE: 'sqlite://' is an in-memory SQLite")):
        proc = sweeper(*command, cwd=tmp_path, env={**base, **extra})
        assert proc.returncode == 2 and shown in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team.yaml"]
    if reading:
        return
    typed = sweeper(*command, "--set", "storage=foo://u:pa ss@h/db", cwd=tmp_path, env=base)
    assert typed.returncode == 2 and "pa ss" not in typed.stderr, typed.stderr
    assert "--set storage=foo://u:***@h/db: Unsupported storage 'foo'" in typed.stderr


@pytest.mark.parametrize("command", [["run", "asl20", "--quick"], ["validate", "asl20"], ["status"]])
def test_a_bare_file_path_as_storage_gets_the_url_to_type(tmp_path, command):
    """``--storage rel.db`` was "Cannot parse storage URL 'rel.db': expected e.g. sqlite:///sweeps.db or ...": the
    user had to work out the scheme and how many slashes."""
    proc = sweeper(*command, "--storage", "rel.db", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "error: The storage 'rel.db' is a file path, not a URL: write sqlite:///rel.db for a SQLite database in " \
           "that file" in " ".join(proc.stderr.split()), proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["validate", "asl20"], ["run", "asl20", "--quick"], ["status"]])
def test_a_port_out_of_range_is_refused_alike_by_validate_run_and_the_readers(tmp_path, command):
    """validate passed ``:99999`` (exit 0), and run failed on it only at the driver: "invalid port number"."""
    proc = sweeper(*command, "--storage", "postgresql+psycopg://u:hunter22@127.0.0.1:99999/db", cwd=tmp_path)
    assert proc.returncode == 2 and "hunter22" not in proc.stderr, proc.stderr
    assert "error: The port 99999 in 'postgresql+psycopg://u:***@127.0.0.1:99999/db' is out of range: a port is 1 to " \
           "65535" in " ".join(proc.stderr.split()), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_checkpoint_disk_says_so_and_resumes_once_there_is_room(tmp_path):
    """``sweeper train --checkpoint-dir`` on a disk that fills: torch.save's "unexpected pos 64 vs 0" was a traceback,
    exit 1; now the words and exit 75 of a sweep's trial on that disk, and the same command carries the run on."""
    (full := tmp_path / "full").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("a small disk of its own needs root (mount -t tmpfs)")
    args = ("train", "--set", "dataset.classes=5", "--set", "epochs=2", "--set", "dataset.samples_per_class=4",
            "--checkpoint-dir", str(full / "ck"))
    try:
        filled = subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k"], capture_output=True,
                                text=True)
        assert "No space left on device" in filled.stderr, filled.stderr
        proc = sweeper(*args, cwd=tmp_path)
        (full / "filler").unlink()  # room again
        again = sweeper(*args, cwd=tmp_path)
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert proc.returncode == 75 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: --checkpoint-dir {full / 'ck'} took no more writes (torch.save could not "
                                  f"write, near {full / 'ck'}: is its disk full?"), proc.stderr
    assert "make room and run the same command: it resumes from the last checkpoint" in " ".join(proc.stderr.split())
    assert again.returncode == 0 and "epoch 2/2" in again.stdout, again.stdout + again.stderr


def test_a_sqlite_file_on_a_full_disk_is_refused_at_the_start_not_waited_for(tmp_path):
    """A new study's SQLite file on a full disk (--results-dir elsewhere, with room): the empty probe file passed,
    then SQLite's "database or disk is full" was taken for an outage, waited out for --storage-timeout (10 minutes
    by default) and ended in exit 75 "once the storage is back", an empty database left behind; now bad input at
    once, as a full --results-dir is."""
    (full := tmp_path / "full").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("a small disk of its own needs root (mount -t tmpfs)")
    try:
        filled = subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k"], capture_output=True,
                                text=True)
        assert "No space left on device" in filled.stderr, filled.stderr
        proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--storage", f"sqlite:///{full}/sweeps.db",
                       "--results-dir", str(tmp_path / "runs"), "--storage-timeout", "5s", cwd=tmp_path)
        left = sorted(path.name for path in full.iterdir())
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert f"no file can be created in '{full}' (No space left on device)" in proc.stderr
    assert left == ["filler"] and not (tmp_path / "runs").exists()


def test_a_sqlite_database_whose_disk_fills_mid_sweep_stops_it_at_once_for_a_resume(tmp_path):
    """sweeps.db and the checkpoints on one disk (the default layout), which the checkpoints fill: the trial on it
    stopped, then SQLite's "database or disk is full" was waited out as an outage for --storage-timeout (10 minutes
    by default) and ended in "once the storage is back", the advice to make room lost; now exit 75 at once, saying
    where to make room, the running trials left RUNNING, and the same command carries them on once there is."""
    import sqlite3
    from contextlib import closing

    def states() -> list[str]:  # read and closed: an open file keeps the disk from being unmounted
        with closing(sqlite3.connect(disk / "sweeps.db")) as db:
            return [state for (state,) in db.execute("SELECT state FROM trials")]

    (disk := tmp_path / "disk").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("a small disk of its own needs root (mount -t tmpfs)")
    args = ("run", "spaces/asl20.yaml", "--quick", "--storage-timeout", "30s")
    try:
        proc = sweeper(*args, cwd=disk)  # five checkpoints fill 12 MB
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # room again
        stopped = states()
        again = sweeper(*args, cwd=disk)
        ended = states()
    finally:  # lazily: the local Ray's processes, started in that folder, leave a moment after the driver
        subprocess.run(["umount", "--lazy", str(disk)], check=True)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 75 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "error: the sweep stopped: the disk of its database sqlite:///sweeps.db took no more writes (database or " \
           f"disk is full); make room under {disk} (sweeper clean asl20-quick deletes finished trials' checkpoints, " \
           "which are never read again) and run the same command: it carries the trials on" in said, said
    assert "storage unreachable" not in proc.stdout, proc.stdout  # not an outage
    assert "RUNNING" in stopped and "FAIL" not in stopped, stopped
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(ended) == 6 and set(ended) <= {"COMPLETE", "PRUNED"}, ended


def test_a_storage_that_cannot_be_written_is_refused_before_ray_starts(tmp_path, postgres_url):
    """A SQLite folder that takes no files, a PostgreSQL role that may not create Optuna's tables: found out only
    once Ray had started (13 s) and the results folder was made."""
    import uuid

    import psycopg

    proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--storage", "sqlite:////proc/sweeps.db", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "no file can be created in '/proc'" in proc.stderr and list(tmp_path.iterdir()) == []
    admin, tag = make_url(postgres_url).set(drivername="postgresql"), uuid.uuid4().hex[:8]
    user, database = f"sweeper_ro_{tag}", f"sweeper_ro_{tag}"
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN")
        conn.execute(f"CREATE DATABASE {database}")  # owned by the admin; PUBLIC may not create in its schema
    try:
        with psycopg.connect(admin.set(database=database).render_as_string(hide_password=False),
                             autocommit=True) as conn:
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # the default from PostgreSQL 15 on
        url = make_url(postgres_url).set(username=user, password="pw-of-ro", database=database)
        proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--storage", url.render_as_string(False), cwd=tmp_path)
        assert proc.returncode == 2 and "may not create tables in its schema" in proc.stderr, proc.stderr
        assert "pw-of-ro" not in proc.stderr and list(tmp_path.iterdir()) == []
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {user}")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x.db?mode=memory&uri=true"])
def test_run_refuses_an_in_memory_sqlite_database(tmp_path, url):
    """Each connection would get its own empty database: the study writer's thread could not see the study."""
    proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is an in-memory SQLite database" in proc.stderr and "sqlite:///sweeps.db" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["run", "spaces/asl20.yaml", "--quick", "--results-dir", "taken/sub"],
                                  ["train", "--set", "epochs=1", "--checkpoint-dir", "taken"]])
def test_a_folder_flag_naming_a_file_is_refused_before_anything_runs(tmp_path, args):
    (tmp_path / "taken").write_text("a file")
    proc = sweeper(*args, "--storage", "sqlite:///sweeps.db", cwd=tmp_path) if args[0] == "run" else \
        sweeper(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "taken is a file, not a folder" in proc.stderr and "epoch" not in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("args", [["run", "spaces/asl20.yaml", "--quick", "--set", "budget.trials=1",
                                   "--storage", "sqlite:///s.db", "--results-dir", ""],
                                  ["resume", "asl20", "--storage", "sqlite:///s.db", "--results-dir", " "],
                                  ["train", "--set", "epochs=1", "--set", "dataset.samples_per_class=4",
                                   "--checkpoint-dir", ""]])
def test_an_empty_folder_flag_is_refused_not_taken_for_the_working_folder(tmp_path, args):
    """A script's unset $DIR: the sweep wrote its checkpoints and Ray's results, train its state.pt, right here."""
    proc = sweeper(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "is empty; give a folder, or leave the flag out" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["export", "report"])
def test_an_empty_output_flag_is_refused_not_taken_for_the_working_folder(tmp_path, command):
    """A script's unset $OUT: export wrote demo.csv right here instead of to stdout."""
    import optuna

    optuna.create_study(storage="sqlite:///" + str(tmp_path / "s.db"), study_name="demo").optimize(
        lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    proc = sweeper(command, "demo", "--storage", "sqlite:///s.db", "-o", "", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "is empty; give a file, DIR/ or - for stdout, or leave the flag out" in " ".join(proc.stderr.split())
    assert [p.name for p in tmp_path.iterdir()] == ["s.db"]


@pytest.mark.parametrize("command", ["run", "validate", "train"])
def test_an_empty_or_unreadable_kind_of_space_says_what_it_is(tmp_path, command):
    """An empty SPACE was "is a folder" (Path('') is '.'), and a FIFO or /dev/null "no such file"."""
    empty = sweeper(command, "", cwd=tmp_path)
    assert empty.returncode == 2 and "Traceback" not in empty.stderr, empty.stderr
    assert "error: SPACE: is empty; give a space YAML file or a built-in name" in empty.stderr
    os.mkfifo(tmp_path / "space.yaml")
    fifo = sweeper(command, "space.yaml", cwd=tmp_path)
    assert fifo.returncode == 2 and "error: space.yaml: is not a regular file" in fifo.stderr, fifo.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["space.yaml"]


def test_a_typed_set_storage_beats_sweeper_storage_and_a_resume_elsewhere_says_where_checkpoints_stay(tmp_path):
    """SWEEPER_STORAGE, exported once, silently beat a --set storage=URL typed for this run: the sweep wrote its
    study to the exported database. And the --results-dir flag's help said checkpoints go to DIR; a resumed study
    kept writing them to its first run's folder. One sweep and its resume check both (a sweep starts a Ray)."""
    env = {**{k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}, "SWEEPER_STORAGE": "sqlite:///env.db"}
    proc = sweeper("run", "spaces/asl20.yaml", "--quick", "--set", "budget.trials=1", "--set",
                   "storage=sqlite:///typed.db", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "study asl20-quick in sqlite:///typed.db (new), 1 trial" in proc.stdout, proc.stdout
    assert (tmp_path / "typed.db").is_file() and not (tmp_path / "env.db").exists()
    status = sweeper("status", "asl20-quick", "--storage", "sqlite:///typed.db", cwd=tmp_path, env=env)
    assert status.returncode == 0 and "1 COMPLETE" in " ".join(status.stdout.split()), status.stdout + status.stderr

    again = sweeper("resume", "asl20-quick", "--set", "budget.trials=2", "--storage", "sqlite:///typed.db",
                    "--results-dir", "elsewhere", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    kept = next(iter((tmp_path / "sweeper_runs" / "checkpoints").iterdir()))
    assert f"checkpoints stay in the study's folder {kept}; --results-dir elsewhere holds Ray's results only" \
        in again.stdout, again.stdout
    assert sorted(p.name for p in kept.glob("trial-*") if p.is_dir()) == ["trial-00000", "trial-00001"]


def test_a_set_map_of_training_keys_is_named_by_the_refusal_it_caused(tmp_path):
    """--set training={epochs: 2}: the refusal it caused was put on the file alone."""
    proc = sweeper("validate", "spaces/asl20.yaml", "--set", "training={epochs: 2}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert ": --set training={epochs: 2}: params.warmup_epochs.high: refused by trials:run: warmup_epochs=6.0" \
        in proc.stderr and "with --set training={epochs: 2}, change params.warmup_epochs.high too" in proc.stderr


def test_study_names_print_as_typed_not_as_rich_markup(tmp_path):
    import optuna

    names = ["asl20[v2]", "exp[/b]", "a[red]x"]
    for name in names:
        optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    for args in (["status"], ["status", "exp[/b]"]):
        proc = sweeper(*args, "--storage", "sqlite:///sweeps.db", cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert all(name in proc.stdout for name in (names if len(args) == 1 else ["exp[/b]"])), proc.stdout


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_dashboard_refuses_a_port_outside_0_to_65535(tmp_path, port):
    proc = sweeper("dashboard", "--port", port, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--port" in proc.stderr, proc.stderr


INT_FLAGS = {  # (command, flag): its range, and a value outside it on each side that has one
    ("run", "--max-failures"): ("0 to 100", ["-1", "101"]), ("resume", "--max-failures"): ("0 to 100", ["-1", "101"]),
    ("dashboard", "--port"): ("0 to 65535", ["-5", "70000"]), ("report", "--top"): ("1 or more", ["0", "-3"]),
    ("clean", "--keep"): ("0 or more", ["-1"]),
}


def test_every_int_flag_is_in_the_list_whose_ranges_are_checked():
    """A new int flag must say its range when given a value outside it: typer's min/max said one bound only."""
    import typing

    from sweeper.cli import app

    found = set()
    for command in app.registered_commands:
        for name, hint in typing.get_type_hints(command.callback, include_extras=True).items():
            if typing.get_origin(hint) is typing.Annotated and typing.get_args(hint)[0] is int:
                found.add((command.name or command.callback.__name__, f"--{name.replace('_', '-')}"))
    assert found == set(INT_FLAGS)


@pytest.mark.parametrize(("command", "flag"), list(INT_FLAGS))
def test_an_int_flag_outside_its_range_says_what_is_allowed(tmp_path, command, flag):
    """``--max-failures 101`` was "Input should be less than or equal to 100", ``-1`` "... greater than or equal to
    0": one bound each time; ``report --top 0`` was said only after the storage was opened."""
    allowed, values = INT_FLAGS[command, flag]
    args = {"run": ["asl20"], "resume": ["asl20"], "report": ["asl20"], "clean": ["asl20"]}.get(command, [])
    for value in values:
        proc = sweeper(command, *args, flag, value, "--storage", "sqlite:///s.db", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"Invalid value for '{flag}': {value} is out of range: give {allowed}" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_version_is_the_installed_package_version(tmp_path):
    from importlib.metadata import version

    proc = sweeper("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"sweeper {version('sweeper')}"


def test_validate_takes_training_keys_and_always_checks_the_quick_section(tmp_path):
    proc = sweeper("validate", "spaces/asl20.yaml", "--set", "epochs=10", "--set", "model.size=large", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\n  epochs: 10\n" in proc.stdout and "\n    size: large\n" in proc.stdout
    (tmp_path / "bad.yaml").write_text("params:\n  lr: {type: float, low: 0.001, high: 0.01}\n"
                                       "quick:\n  budget.trials: 0\n")
    proc = sweeper("validate", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.yaml:4: --quick: budget.trials: Input should be greater than or equal to 1" in proc.stderr


def test_train_of_a_users_function_prints_numpy_numbers_and_refuses_a_result_that_is_no_dict(tmp_path):
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "odd_train.py"), tmp_path)
    (tmp_path / "odd.yaml").write_text("entrypoint: odd_train:train\nobjective: {metric: score, direction: maximize}"
                                       "\nparams:\n  x: {type: float, low: 0.0, high: 0.01}\n")
    numpy = sweeper("train", "odd.yaml", "--set", "mode=numpy", cwd=tmp_path)
    assert numpy.returncode == 0 and "score 0.2" in numpy.stdout and "final: acc 20.00%" in numpy.stdout, numpy.stdout
    odd = sweeper("train", "odd.yaml", "--set", "mode=not_a_dict", cwd=tmp_path)
    assert odd.returncode == 2 and "Traceback" not in odd.stderr
    assert "odd_train:train must return a dict of metric name -> value or None, not float" in odd.stderr
    raised = sweeper("train", "odd.yaml", "--set", "mode=odd_exception", cwd=tmp_path)  # the user's traceback alone
    assert raised.returncode == 1 and raised.stderr.startswith("Traceback (most recent call last):\n  File "), \
        raised.stderr
    assert "odd_train.py\", line 25, in train\n    raise ShapeError((2, 3), (3, 2))" in raised.stderr
    assert "typer" not in raised.stderr and "click" not in raised.stderr and "standalone.py" not in raised.stderr
    assert raised.stderr.rstrip().endswith("error: odd_train:train raised ShapeError: got shape (2, 3), want (3, 2)")
    arrays = sweeper("train", "odd.yaml", "--set", "mode=arrays", cwd=tmp_path)  # 0-d arrays: numbers
    assert arrays.returncode == 0 and "final: best_score 0.9  acc 20.00%" in arrays.stdout, arrays.stdout
    exits = sweeper("train", "odd.yaml", "--set", "mode=exits", cwd=tmp_path)  # not a silent exit with its code
    assert exits.returncode == 1 and exits.stderr.rstrip().endswith("error: odd_train:train raised SystemExit: 2")


def test_train_of_a_users_function_refuses_what_every_trial_of_the_sweep_fails_on(tmp_path):
    """The smoke run passed (exit 0) a function whose every trial fails: an objective that is no number, a metric
    holding a tensor (which Ray refuses, each trial trained in full once per retry)."""
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "odd_train.py"), tmp_path)
    (tmp_path / "odd.yaml").write_text("entrypoint: odd_train:train\nobjective: {metric: score, direction: maximize}"
                                       "\nparams:\n  x: {type: float, low: 0.0, high: 0.01}\n")
    listed = sweeper("train", "odd.yaml", "--set", "mode=best_list", cwd=tmp_path)
    assert listed.returncode == 2 and "Traceback" not in listed.stderr, listed.stdout + listed.stderr
    assert "odd_train:train returned best_score = [0.1, 0.2], not a number; a trial of the sweep fails on it" in \
        " ".join(listed.stderr.split())
    last = sweeper("train", "odd.yaml", "--set", "mode=bools_last", cwd=tmp_path)  # it returned None: not "returned"
    assert last.returncode == 2 and "odd_train:train last reported score = True, not a number; a trial of the " \
                                    "sweep fails on it" in " ".join(last.stderr.split()), last.stdout + last.stderr
    (tmp_path / "tensors.py").write_text(
        "import torch\n\n"
        "def fit(config, report, checkpoint_dir):\n"
        "    report({'epoch': 1, 'score': torch.tensor(0.5), 'per_class': torch.tensor([0.25, 0.75])})\n")
    (tmp_path / "tensors.yaml").write_text("entrypoint: tensors:fit\nobjective: {metric: score, direction: maximize}"
                                           "\nparams:\n  x: {type: float, low: 0.0, high: 0.01}\n")
    tensor = sweeper("train", "tensors.yaml", cwd=tmp_path)
    assert tensor.returncode == 2 and "Traceback" not in tensor.stderr, tensor.stdout + tensor.stderr
    assert "tensors:fit reported per_class = tensor([0.2500, 0.7500]), which holds a torch object" in \
        " ".join(tensor.stderr.split())
    (tmp_path / "scalar.py").write_text("def fit(config, report, checkpoint_dir):\n    report(0.5)\n")
    (tmp_path / "scalar.yaml").write_text((tmp_path / "tensors.yaml").read_text().replace("tensors:", "scalar:"))
    scalar = sweeper("train", "scalar.yaml", cwd=tmp_path)  # not sweeper's own AttributeError, with its frames
    assert scalar.returncode == 2 and "Traceback" not in scalar.stderr, scalar.stdout + scalar.stderr
    assert "scalar:fit reported 0.5: report takes a dict of metric name -> value" in " ".join(scalar.stderr.split())


def test_train_of_a_users_function_refuses_an_objective_every_trial_fails_on_as_diverged_or_missing(tmp_path):
    """A sweep fails a trial that ended with its objective NaN or inf (stop_reason diverged) or never gave it;
    sweeper train printed the NaN, or nothing, and passed the smoke run (exit 0)."""
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "odd_train.py"), tmp_path)
    (tmp_path / "odd.yaml").write_text("entrypoint: odd_train:train\nobjective: {metric: score, direction: maximize}"
                                       "\nparams:\n  x: {type: float, low: 0.0, high: 0.01}\n")
    for mode, said in (("nan_last", "odd_train:train ended with score = nan; a trial of the sweep fails on it "
                                    "(stop_reason diverged)"),
                       ("best_nan", "odd_train:train ended with best_score = nan; a trial of the sweep fails on it")):
        proc = sweeper("train", "odd.yaml", "--set", f"mode={mode}", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert said in " ".join(proc.stderr.split()), proc.stderr
    (tmp_path / "other.py").write_text("def fit(config, report, checkpoint_dir):\n"
                                       "    report({'epoch': 1, 'acc': 0.5})\n    return {'acc': 0.5}\n")
    (tmp_path / "other.yaml").write_text("entrypoint: other:fit\nobjective: {metric: score, direction: maximize}"
                                         "\nparams:\n  x: {type: float, low: 0.0, high: 0.01}\n")
    proc = sweeper("train", "other.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "other:fit returned without reporting 'score'; a trial of the sweep fails on it" \
        in " ".join(proc.stderr.split()), proc.stdout + proc.stderr


def test_a_user_and_host_given_as_query_options_are_named_in_the_error(tmp_path, postgres_url):
    server = make_url(postgres_url)
    url = f"postgresql+psycopg:///{server.database}?host={server.host}&port={server.port or 5432}" \
          "&user=nosuchuser&password=secret1"
    proc = sweeper("status", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and "secret1" not in proc.stderr, proc.stderr
    assert f"password=***: the user 'nosuchuser' does not exist at {server.host}:{server.port or 5432}" \
        in " ".join(proc.stderr.split())


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_takes_h_for_the_program_and_each_command(flag):
    for args in ([flag], ["run", flag], ["train", flag]):
        proc = sweeper(*args)
        assert proc.returncode == 0 and "Usage: " in proc.stdout and "Options" in proc.stdout, proc.stdout + proc.stderr


def test_help_shows_what_each_option_takes_and_no_value_for_a_flag():
    """typer labels each option with its Python type: `--quick <bool>` read as a flag that wants true or false."""
    lines = {line.split()[1]: line for line in sweeper("run", "--help").stdout.splitlines() if line.startswith("│ --")}
    assert lines["--quick"].split()[2] == "Smoke" and lines["--fresh"].split()[2] == "Start", lines
    taken = {name: line.split()[2] for name, line in lines.items() if name not in ("--quick", "--fresh", "--help")}
    assert taken == {"--set": "KEY=VALUE", "--storage": "URL", "--address": "ADDRESS", "--results-dir": "DIR",
                     "--max-failures": "N", "--storage-timeout": "DURATION"}, taken
    for args in (["--help"], ["run", "--help"], ["status", "-h"]):  # -h too: typer showed `--help -h <bool>`
        shown = sweeper(*args).stdout
        assert "--help" in shown and "<bool>" not in shown, shown


def test_help_of_every_command_taking_a_space_says_a_built_in_name_will_do(tmp_path):
    """train and dashboard take `asl20` as run and validate do, but their help said "Space YAML" only."""
    for command in ("run", "validate", "train", "dashboard"):
        shown = " ".join(sweeper(command, "--help").stdout.split())
        assert "built-in" in shown, (command, shown)
    proc = sweeper("dashboard", "asl20", cwd=tmp_path)  # the built-in's storage, sweeps.db here: not made
    assert proc.returncode == 2 and "There is no SQLite database" in proc.stderr, proc.stderr


def test_an_error_on_line_100_shows_its_number_not_an_emoji(tmp_path):
    """rich reads ':100:' as the 💯 emoji: 'long.yaml:100: params...' lost its line number."""
    (tmp_path / "long.yaml").write_text("#\n" * 98 + "params:\n  lr: {type: float, low: 0.01, high: 0.001}\n")
    proc = sweeper("validate", "long.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: long.yaml:100: params.lr.low:"), proc.stderr



@pytest.mark.parametrize("command", ["status", "best"])
def test_a_bad_output_format_is_refused_before_the_storage_is_opened(tmp_path, command):
    """The format is the user's to fix first: a typo is not answered with a storage error, and nothing connects."""
    name = [] if command == "status" else ["s0"]
    proc = sweeper(command, *name, "--format", "yaml", "--storage", "sqlite:///nosuch.db", cwd=tmp_path)
    assert proc.returncode == 2 and "--format must be one of table, json, not 'yaml'" in proc.stderr, proc.stderr


def closed_stdout(*args, cwd, buffered=True):
    """``python ARGS`` whose reader went away before its first line (``sweeper status | head -1``, deterministic).
    ``buffered``: stdout as in a shell (block-buffered, written when full and at exit), else PYTHONUNBUFFERED."""
    reader, writer = os.pipe()
    os.close(reader)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "COLUMNS": "200"}
    try:
        return subprocess.run([sys.executable, *args], stdout=writer, stderr=subprocess.PIPE, text=True, cwd=cwd,
                              timeout=300, env=env if buffered else {**env, "PYTHONUNBUFFERED": "1"})
    finally:
        os.close(writer)


@pytest.mark.parametrize(("args", "buffered"), [(["status"], True), (["status", "--format", "json"], False),
                                                (["best", "s0", "--format", "json"], True), (["export", "s0"], True),
                                                (["--help"], True), (["run", "--help"], False)],
                         ids=["table", "json-written-at-once", "json-written-at-the-end", "export", "help",
                              "a-command's-help"])
def test_a_reader_that_went_away_is_no_error(tmp_path, args, buffered):
    """typer and rich exit 1 on a broken pipe, silently: the code `sweeper run` gives a sweep whose every trial
    failed. The table goes through rich, the JSON through sys.stdout, its buffer flushed as the command ends."""
    import optuna

    for name in ("s0", "s1", "s2"):
        optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'sweeps.db'}").optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    storage = [] if "--help" in args else ["--storage", "sqlite:///sweeps.db"]
    proc = closed_stdout("-m", "sweeper.cli", *args, *storage, cwd=tmp_path, buffered=buffered)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_finished_sweep_whose_reader_went_away_keeps_its_exit_code(tmp_path):
    """`sweeper run` leaves with os._exit after flushing stdout: output still buffered there (a plain print, Ray's
    forwarded worker lines) must not turn a finished sweep into exit 1."""
    proc = closed_stdout("-c", "import sys; from sweeper.cli import _leave; sys.stdout.write('buffered'); _leave(0)",
                         cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.slow
def test_a_sweep_whose_reader_went_away_runs_to_its_end(tmp_path):
    """`sweeper run ... | head -3` stopped the sweep at its next line and exited 1; now it trains every trial."""
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "scripted_train.py"), tmp_path)
    (tmp_path / "s.yaml").write_text("name: piped\nentrypoint: scripted_train:train\nobjective: {metric: score, "
                                     "direction: maximize}\ntraining: {epochs: 2, sleep: 0.01}\n"
                                     "params:\n  x: {type: float, low: 0.1, high: 1.0}\n"
                                     "budget: {trials: 2, max_concurrent: 1}\nresources: {cpu: 1}\n")
    proc = closed_stdout("-m", "sweeper.cli", "run", "s.yaml", "--storage", "sqlite:///s.db", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    import optuna

    study = optuna.load_study(study_name="piped", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


@pytest.mark.slow
def test_a_sweep_of_one_trial_at_a_time_starts_no_ray_worker_ahead(tmp_path):
    """A Ray of sweeper's own started a worker per CPU as it started, each importing Tune (about 110 MB, 2-3 s of
    CPU): a sweep of fewer trials at once than CPUs left the rest idle all along (on 2 CPUs, 2 workers for 1 trial).
    Only its trial's worker starts now; Ray writes a log per worker in its session folder."""
    from ray._private.utils import get_num_cpus

    if get_num_cpus() < 2:
        pytest.skip("one CPU: the one worker Ray starts ahead is the trial's")
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "scripted_train.py"), tmp_path)
    (tmp_path / "s.yaml").write_text("name: alone\nentrypoint: scripted_train:train\nobjective: {metric: score, "
                                     "direction: maximize}\ntraining: {epochs: 2, sleep: 0.01}\n"
                                     "params:\n  x: {type: float, low: 0.1, high: 1.0}\n"
                                     "budget: {trials: 1, max_concurrent: 1}\nresources: {cpu: 1}\n")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))  # short: Ray's socket paths must stay under 107 bytes
    try:
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "s.yaml", "--storage", "sqlite:///s.db"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
        assert proc.returncode == 0 and "trials: 1 COMPLETE" in " ".join(proc.stdout.split()), proc.stdout + proc.stderr
        workers = {p.name for p in ray_tmp.glob("ray/session_*/logs/python-core-worker-*.log")}  # and session_latest
        assert len(workers) == 1, workers
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_columns_0_is_no_width(tmp_path):
    """COLUMNS=0 (no width given, as Python's shutil reads it) was 0 columns to rich: nothing was printed at all, not
    even an error; a command said nothing and exited 2."""
    env = {**os.environ, "COLUMNS": "0"}
    listed = run_command(["spaces"], tmp_path, env)
    assert listed.returncode == 0 and "spaces/asl20.yaml  " in listed.stdout, listed
    failed = run_command(["status", "--storage", "sqlite:///none.db"], tmp_path, env)
    assert failed.returncode == 2 and failed.stderr.startswith("error: "), failed


def test_rows_on_stdout_are_the_utf_8_of_the_file_whatever_the_locale(tmp_path):
    """`sweeper export NAME > rows.csv` under an ASCII stdout wrote na\\xefve into the data (and a Latin-1 one other
    bytes than -o rows.csv, which is UTF-8); the report's page declares UTF-8 too."""
    import optuna

    optuna.create_study(study_name="s0", storage=f"sqlite:///{tmp_path / 'sweeps.db'}").optimize(
        lambda t: float(t.suggest_categorical("c", ["naïve", "plain"]) == "plain"), n_trials=2)
    assert sweeper("export", "s0", "-o", "rows.csv", cwd=tmp_path).returncode == 0
    for encoding in ("ascii", "latin-1"):
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "export", "s0"], capture_output=True, cwd=tmp_path,
                              timeout=300, env={**os.environ, "PYTHONIOENCODING": encoding})
        assert (proc.returncode, proc.stdout) == (0, (tmp_path / "rows.csv").read_bytes()), encoding


def test_a_table_under_an_ascii_stdout_keeps_its_columns(tmp_path):
    """`sweeper status` under PYTHONIOENCODING=ascii (or LC_ALL=C): rich measured café as 4 columns, the stream
    wrote caf\\xe9 in 7, and the row's later cells shifted right of the table's border; each character the stream
    cannot hold is now '?' in the columns it takes (2 for a wide one), and a line of text keeps the escape."""
    import optuna

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    for name in ("café", "研究"):
        optuna.create_study(study_name=name, storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "status", "--storage", url], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith(("|", "+"))]
    assert len({len(line) for line in table}) == 1, proc.stdout
    assert any(line.startswith("| caf? ") for line in table) and any(line.startswith("| ???? ") for line in table)
    missing = sweeper("best", "caf", "--storage", url, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert "did you mean 'caf\\xe9'?" in missing.stderr, missing.stderr


def test_a_name_beyond_an_ascii_locale_is_one_message_and_exit_2(tmp_path):
    """Under LC_ALL=C with PYTHONUTF8=0: a typed study name holding é (kept as surrogates by Python) failed in the
    storage's query with a UnicodeEncodeError traceback; a space named café wrote its study, then failed on its
    first folder with one, its first trial left RUNNING. Now each is one message and exit 2, nothing written."""
    import optuna

    optuna.create_study(study_name="café", storage=f"sqlite:///{tmp_path / 's.db'}")
    (tmp_path / "cafe.yaml").write_text("name: café\nparams:\n  lr: {type: float, low: 0.001, high: 0.01}\n",
                                        encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    typed = sweeper("status", "café", "--storage", "sqlite:///s.db", cwd=tmp_path, env=env)
    assert typed.returncode == 2 and "Traceback" not in typed.stderr, typed.stderr
    assert "is not text in this locale's encoding (ascii): run sweeper under a UTF-8 locale" in typed.stderr
    named = sweeper("run", "cafe.yaml", "--storage", "sqlite:///new.db", cwd=tmp_path, env=env)
    assert named.returncode == 2 and "Traceback" not in named.stderr, named.stderr
    assert "is also a folder name, which this locale's file system encoding (ascii) cannot hold" in named.stderr
    assert not (tmp_path / "new.db").exists()


def test_a_space_file_whose_name_is_not_utf8_still_validates(tmp_path):
    """A Latin-1 file name (caf\\xe9.yaml) under a UTF-8 locale is a path, not a study name: it opens as the bytes
    it is, as it did before arguments were checked for text."""
    space = tmp_path / os.fsdecode(b"caf\xe9.yaml")
    space.write_text("name: cafe\nparams:\n  lr: {type: float, low: 0.001, high: 0.01}\n", encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    checked = sweeper("validate", str(space), "--set", f"storage=sqlite:///{tmp_path / 's.db'}", cwd=tmp_path, env=env)
    assert checked.returncode == 0 and "is not text" not in checked.stderr, checked.stderr



def test_an_output_file_still_to_make_whose_name_is_not_utf8_is_written(tmp_path):
    """-o caf\\xe9.csv (Latin-1, under a UTF-8 locale) in the working folder has no folder part to find and no file
    yet: it was refused as 'not text in this locale's encoding (utf-8)', with the advice to run under C.UTF-8."""
    import optuna

    optuna.create_study(study_name="cafe", storage=f"sqlite:///{tmp_path / 's.db'}").add_trial(
        optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    for output in ("-o", os.fsdecode(b"caf\xe9.csv")), (os.fsdecode(b"--output=caf\xe9-2.csv"),):
        done = sweeper("export", "cafe", "--storage", "sqlite:///s.db", *output, cwd=tmp_path, env=env)
        assert done.returncode == 0 and "is not text" not in done.stderr, done.stderr
    assert {b"caf\xe9.csv", b"caf\xe9-2.csv"} <= {os.fsencode(p.name) for p in tmp_path.iterdir()}

FULL_DISK = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@FULL_DISK
def test_a_command_whose_stdout_is_on_a_full_disk_says_so(tmp_path):
    """`sweeper export NAME > rows.csv` on a full disk: a traceback, as for every command printing to stdout; now
    one message and exit 2, as for -o rows.csv."""
    import optuna

    optuna.create_study(study_name="s0", storage=f"sqlite:///{tmp_path / 'sweeps.db'}").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    cases = ["status", "status --format json", "export s0"]  # a table through rich, then plain writes
    procs = [(args, subprocess.Popen(f"{shlex.quote(sys.executable)} -m sweeper.cli {args} >/dev/full", shell=True,
                                     cwd=tmp_path, text=True, stderr=subprocess.PIPE)) for args in cases]
    for args, proc in procs:
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (2, "error: Cannot write to stdout: No space left on device.\n"), args


@FULL_DISK
def test_a_command_run_in_process_on_a_full_stdout_raises_bad_input(tmp_path):
    """A program running a command in-process (main() not run, so not its hook on rich): rich's own on_broken_pipe
    raised SystemExit(1) from a full stdout, the table's print and the JSON's alike; now the command runs to its end
    and raises the BadInput that main() makes exit 2."""
    import contextlib
    import io

    import optuna

    from sweeper.cli import app
    from sweeper.console import console
    from sweeper.errors import BadInput

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s0", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    for args in (["status"], ["status", "--format", "json"]):
        with (open("/dev/full", "w") as full, contextlib.redirect_stdout(full),
              pytest.raises(BadInput, match=r"^Cannot write to stdout: No space left on device")):
            app([*args, "--storage", url], standalone_mode=False)
    # the program's own later print through sweeper's console: it was quiet for good, and then printed the failed
    # table before its own line (rich kept what it could not write)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        console.print("after")
    assert out.getvalue() == "after\n"


@pytest.mark.slow
@FULL_DISK
def test_a_sweep_whose_log_is_on_a_full_disk_runs_to_its_end(tmp_path):
    """The print of a line raised (ENOSPC there, EIO from the closed terminal of a sweep run with & disown) and
    ended the sweep, exit 1, its running trials left RUNNING; now it trains every trial, and says why its log ends."""
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "scripted_train.py"), tmp_path)
    (tmp_path / "s.yaml").write_text("name: full\nentrypoint: scripted_train:train\nobjective: {metric: score, "
                                     "direction: maximize}\ntraining: {epochs: 2, sleep: 0.01}\n"
                                     "params:\n  x: {type: float, low: 0.1, high: 1.0}\n"
                                     "budget: {trials: 2, max_concurrent: 1}\nresources: {cpu: 1}\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "s.yaml", "--storage", "sqlite:///s.db"],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "the sweep went on without its output (stdout: No space left on device)" in proc.stderr
    import optuna

    study = optuna.load_study(study_name="full", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_the_ray_temp_folder_checked_is_the_one_ray_uses(tmp_path, monkeypatch):
    """Ray reads RAY_TMPDIR, then TMPDIR (even one that is missing), then /tmp; Python's temp folder reads TMP and
    TEMP too and passes over a TMPDIR it cannot write: a long TMP was refused though Ray started, and a long
    missing TMPDIR passed, and the study was written before Ray failed (found by a regression check)."""
    from sweeper.errors import BadInput
    from sweeper.ray_runtime import check_ray_temp_folder

    long = str(tmp_path / ("scratch-" + "x" * 100))
    for name in ("RAY_TMPDIR", "TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMP", long)
    check_ray_temp_folder()  # Ray's is /tmp
    monkeypatch.setenv("TMPDIR", long + "-missing")
    with pytest.raises(BadInput, match="-missing: its sockets' paths there would be"):
        check_ray_temp_folder()


def test_a_local_sweep_reads_its_data_first_whatever_ray_address_says(tmp_path):
    """--address local (a Ray of the sweep's own) beside a RAY_ADDRESS skipped the data check: every trial FAILED
    on the missing file, and the study was written (found by an exploratory test)."""
    (tmp_path / "data.yaml").write_text("training:\n  dataset: {name: npz, path: gone.npz}\n"
                                        "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n")
    proc = sweeper("run", "data.yaml", "--storage", "sqlite:///s.db", "--address", "local", cwd=tmp_path,
                   env={**os.environ, "RAY_ADDRESS": "10.0.0.5:6379"})
    assert proc.returncode == 2 and proc.stderr.startswith("error: data.yaml: training.dataset: gone.npz"), \
        proc.stderr
    assert not (tmp_path / "s.db").exists()


def test_a_ray_temp_folder_that_is_a_file_is_refused_before_the_study_is_written(tmp_path):
    """The study is made while Ray starts; Ray failing on it exited 2 with the study and its enqueued rows written
    anyway, and said the file had 0 MiB free (found by an exploratory test)."""
    import tempfile

    import optuna

    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="sweeper-") as file:  # short: Ray's sockets fit
        proc = sweeper("run", "asl20", "--quick", "--storage", "sqlite:///s.db", cwd=tmp_path,
                       env={**os.environ, "RAY_TMPDIR": file.name})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"its temp folder {file.name} is not a folder" in proc.stderr, proc.stderr
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 's.db'}") == []


def test_an_address_where_another_service_listens_is_refused_at_once(monkeypatch):
    """A Redis on 6379 (the port Ray users type) accepted the connection, and Ray retried it for 14 minutes, deaf
    to Ctrl-C; a Ray head answers in gRPC (found by an exploratory test)."""
    import socketserver
    import threading

    from sweeper import ray_runtime
    from sweeper.errors import BadInput

    class Redis(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(64)
            self.request.sendall(b"-ERR unknown command 'PRI'\r\n")

    class Silent(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(64)
            time.sleep(2)

    monkeypatch.setattr(ray_runtime, "ADDRESS_TIMEOUT_S", 0.5)
    for handler in (Redis, Silent):
        with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            with pytest.raises(BadInput, match="something listens there, but not a Ray head"):
                ray_runtime.check_ray_address(f"127.0.0.1:{server.server_address[1]}")
            server.shutdown()



def test_data_a_param_chooses_is_read_before_the_sweep(tmp_path):
    """A dataset.path that a param chooses (or a fixed one beside a sampled dataset setting) was not read before
    the sweep: every trial that drew a missing file failed, in a study written for nothing, and the sweep exited 1."""
    import numpy as np

    from search_spaces.loader import load_spec
    from sweeper.preflight import check_data_found
    from trials.errors import DataError

    x = np.random.default_rng(0).standard_normal((18, 8, 5, 2)).astype(np.float32)
    np.savez(tmp_path / "real.npz", X=x, y=np.repeat(np.arange(3), 6))
    head = "objective: {metric: val_loss}\ntraining:\n  dataset: {name: npz, path: %s, classes: 3}\nparams:\n"
    (tmp_path / "data.yaml").write_text(head % "real.npz" + "  lr: {type: float, low: 0.001, high: 0.01}\n"
                                        "  dataset.path: {type: categorical, choices: [real.npz, gone.npz]}\n")
    proc = sweeper("run", "data.yaml", "--storage", "sqlite:///s.db", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "error: data.yaml:6: params.dataset.path: gone.npz: file not found (a relative path is read from "), proc.stderr
    assert "every choice must be data the trials can read" in proc.stderr and not (tmp_path / "s.db").exists()
    sampled = "  dataset.seq_len: {type: int, low: 8, high: 16}\n"
    (tmp_path / "data.yaml").write_text(head % "gone.npz" + sampled)
    with pytest.raises(DataError, match=r"data.yaml: training.dataset: gone.npz: file not found"):
        check_data_found(load_spec(tmp_path / "data.yaml"), tmp_path)
    (tmp_path / "data.yaml").write_text(head % "gone.npz" + sampled +
                                        "  dataset.path: {type: categorical, choices: [real.npz]}\n")
    assert check_data_found(load_spec(tmp_path / "data.yaml"), tmp_path) is None  # read, and no one data to record


def test_where_a_relative_data_path_is_read_from_is_said_for_a_relative_one_only(tmp_path):
    """An absolute WLASL root (or npz) that is missing was said to be read "(a relative path is read from ...)"."""
    from search_spaces.errors import SpecError
    from search_spaces.loader import load_spec
    from sweeper.preflight import check_data_found
    from trials.errors import DataError

    (tmp_path / "root").mkdir()
    space = "objective: {metric: val_loss}\ntraining:\n  dataset: {name: wlasl, path: %s, classes: 3}\nparams:\n" \
            "  lr: {type: float, low: 0.001, high: 0.01}\n"
    for path, end in ((tmp_path / "root", "split file not found (dataset.split_file)"),
                      (tmp_path / "nosuch", "nosuch: WLASL root folder not found"),
                      ("root", f"split file not found (dataset.split_file) (a relative path is read from {tmp_path})")):
        (tmp_path / "w.yaml").write_text(space % path)
        with pytest.raises(DataError) as info:
            check_data_found(load_spec(tmp_path / "w.yaml"), tmp_path)
        assert str(info.value).endswith(end), info.value
    (tmp_path / "w.yaml").write_text(space % "root" + "  dataset.name: {type: categorical, choices: [wlasl]}\n"
                                     f"  dataset.path: {{type: categorical, choices: [{tmp_path / 'nosuch'}]}}\n")
    with pytest.raises(SpecError, match=r"root folder not found \(drawn with dataset.name=wlasl, dataset.path=/"):
        check_data_found(load_spec(tmp_path / "w.yaml"), tmp_path)


def test_data_choices_an_npz_does_not_read_are_not_read_again(tmp_path, monkeypatch):
    """Every combination of the chosen data settings was read, those the dataset's kind ignores too: an npz space
    choosing among 10 split files and 10 landmark folders read its arrays 100 times before the sweep."""
    import numpy as np

    import sweeper.preflight as preflight
    from search_spaces.loader import load_spec
    from trials.datasets import read_npz

    x = np.random.default_rng(0).standard_normal((18, 8, 5, 2)).astype(np.float32)
    np.savez(tmp_path / "real.npz", X=x, y=np.repeat(np.arange(3), 6))
    (tmp_path / "data.yaml").write_text(
        "objective: {metric: val_loss}\ntraining:\n  dataset: {name: npz, path: real.npz, classes: 3}\nparams:\n"
        "  dataset.split_file: {type: categorical, choices: [a.json, b.json, c.json]}\n"
        "  dataset.landmarks_dir: {type: categorical, choices: [p, q]}\n")
    reads = []
    monkeypatch.setattr(preflight, "read_npz", lambda *a, **k: reads.append(a) or read_npz(*a, **k))
    assert preflight.check_data_found(load_spec(tmp_path / "data.yaml"), tmp_path) is None
    assert len(reads) == 1


def test_a_dead_ray_address_from_the_environment_says_to_unset_it(monkeypatch):
    """RAY_ADDRESS left over from earlier work: the advice was "leave out --address", a flag nobody had given."""
    import socket

    from sweeper import ray_runtime
    from sweeper.errors import BadInput

    with socket.socket() as closed:  # a port that nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(BadInput, match="no Ray head answers there") as refused:
        ray_runtime.check_ray_address(None)
    assert "RAY_ADDRESS '127.0.0.1" in str(refused.value) and "unset RAY_ADDRESS" in str(refused.value)
    assert "--address" not in str(refused.value)
    with pytest.raises(BadInput, match="or leave out --address for a Ray of the sweep's own"):
        ray_runtime.check_ray_address(f"127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("field", "metric", "whose"), [("targets", "error", "sweeper"),
                                                         ("targets", "done", "Ray Tune"),
                                                         ("objective", "timestamp", "Ray Tune")])
def test_a_metric_judged_under_a_name_the_sweep_records_for_itself_is_refused(tmp_path, command, field, metric, whose):
    """A function's "error" (a top-1 error) is recorded as returned_error, sweeper's name for a failed trial's
    message: a target on it was never met, silently; Ray Tune's names (done, timestamp) hold Ray's values."""
    (tmp_path / "named.py").write_text(
        "def fit(config, report, checkpoint_dir):\n"
        f"    report({{'epoch': 1, 'acc': 0.5, {metric!r}: 0.1}})\n"
        f"fit.metrics = ['acc', {metric!r}]\n")
    judged = f"objective: {{metric: {metric}, direction: minimize}}\n" if field == "objective" else \
        f"objective: {{metric: acc, direction: maximize}}\ntargets: {{{metric}: 0.2}}\n"
    (tmp_path / "s.yaml").write_text(f"entrypoint: named:fit\n{judged}params:\n  x: {{type: float, low: 0, high: 1}}\n")
    storage = ["--storage", f"sqlite:///{tmp_path / 'sweeps.db'}"] if command == "run" else []
    proc = sweeper(command, "s.yaml", *storage, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    where = "s.yaml:2" if field == "objective" else "s.yaml:3"
    assert f"{where}: {field}.{'metric' if field == 'objective' else metric}: {metric} is a name {whose} records " \
           f"for itself, so a training function's {metric} is recorded as returned_{metric}, which nothing judges: " \
           f"report it under another name (e.g. val_{metric})" in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "sweeps.db").exists()
