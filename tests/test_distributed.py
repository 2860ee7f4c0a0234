"""Recording and monitoring under torch.distributed: DDP with the gloo backend, two processes
on the CPU started with torch.multiprocessing, against a single-process recording."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nbdebug
from tests.gloo_exit import run_repeating_gloo_exit_abort

# Every rank runs this: the same Recorder and Monitor, DDP training on its shard of the data.
WORKER = textwrap.dedent("""
    import datetime, json, logging, os, sys
    import torch, torch.distributed as dist, torch.multiprocessing as mp
    from torch import nn
    from torch.nn import functional as F
    import nbdebug

    def data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(103, 6, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        return x, y

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def worker(rank, world, folder, port, kill_epoch):
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", port
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
        torch.set_num_threads(1)
        logged = []
        handler = logging.Handler()
        handler.emit = lambda record: logged.append(record.getMessage())
        logging.getLogger("nbdebug").addHandler(handler)
        x, y = data()
        ddp = nn.parallel.DistributedDataParallel(model())
        rec = nbdebug.Recorder(ddp, head=ddp.module[2], path=os.path.join(folder, "run"),
                               train=(x[:83], y[:83]), test=(x[83:], y[83:]), batch_size=16)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
        mon = nbdebug.Monitor(ddp, optimizer=opt, loss_fn=nn.CrossEntropyLoss())
        losses = []
        for epoch in range(3):
            shard = slice(rank, 83, world)
            loss = F.cross_entropy(ddp(x[shard]), y[shard])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss=loss)
            losses.append(loss.item())
            if rank == 0:
                torch.save(ddp.module.state_dict(), os.path.join(folder, f"state-{epoch}.pt"))
            if epoch == kill_epoch and rank == 1:
                calls = []
                def die(module, args):
                    calls.append(1)
                    if len(calls) == 2:
                        os._exit(3)  # rank 1 dies half-way through its share of the capture
                ddp.module[0].register_forward_pre_hook(die)
            rec.capture(epoch, metrics={"loss": losses[-1]})
        mon.step(loss=float("nan") if rank == 1 else 1.0)  # a NaN loss on one rank only
        result = {"epochs": rec.epochs, "losses": losses, "monitor_losses": mon.step_losses,
                  "codes": [w.code for w in mon.warnings], "logged": logged}
        with open(os.path.join(folder, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
        dist.barrier()  # no rank tears down while another still communicates
        dist.destroy_process_group()

    if __name__ == "__main__":
        folder, port, kill_epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
        mp.spawn(worker, args=(2, folder, port, kill_epoch), nprocs=2)
""")


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _run_ddp(tmp_path, kill_epoch=-1):
    script = tmp_path / "ddp.py"
    script.write_text(WORKER)
    root = str(Path(nbdebug.__file__).parent.parent)  # this nbdebug, wherever the script lies
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path), _free_port(), str(kill_epoch)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


def test_ddp_recording_equals_a_single_process_recording(tmp_path):
    result, tmp_path = run_repeating_gloo_exit_abort(_run_ddp, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2] and run.n_samples == 103
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["epochs"] == ranks[1]["epochs"] == [0, 1, 2]
    assert run.metrics(2) == {"loss": ranks[0]["losses"][2]}  # rank 0's metrics

    # The same model states recorded by one process.
    namespace: dict = {}
    exec(WORKER.split("def worker")[0], namespace)
    x, y = namespace["data"]()
    model = namespace["model"]()
    single = nbdebug.Recorder(
        model, head=model[2], path=tmp_path / "single", train=(x[:83], y[:83]), test=(x[83:], y[83:]), batch_size=16
    )
    for epoch in range(3):
        model.load_state_dict(torch.load(tmp_path / f"state-{epoch}.pt", weights_only=True))
        single.capture(epoch)
    alone = nbdebug.load_run(tmp_path / "single")
    for epoch in range(3):
        np.testing.assert_allclose(run.representations(epoch), alone.representations(epoch), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(run.probabilities(epoch), alone.probabilities(epoch), rtol=1e-3, atol=1e-4)
        assert np.abs(np.asarray(run.representations(epoch), np.float32)).max() > 0.1  # not all zeros
    np.testing.assert_array_equal(run.head_state(2)["weight"], alone.head_state(2)["weight"])

    # The monitor: losses averaged over the ranks, a NaN on one rank reported once, by rank 0.
    for rank in ranks:
        expected = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"], strict=True)]
        np.testing.assert_allclose(rank["monitor_losses"][:3], expected, rtol=1e-6)
        assert np.isnan(rank["monitor_losses"][3]) and "nan_loss" in rank["codes"]
    assert any("nan" in message.lower() for message in ranks[0]["logged"]) and ranks[1]["logged"] == []


def test_a_rank_killed_mid_capture_leaves_every_finished_epoch_readable(tmp_path):
    result = _run_ddp(tmp_path, kill_epoch=2)
    assert result.returncode != 0
    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0, 1]
    assert run.representations(1).shape == (103, 16) and np.isfinite(run.probabilities(1)).all()
    assert not (tmp_path / "run" / "epochs" / "000002").exists()


def test_without_a_process_group_nothing_communicates(tmp_path, blobs):
    from nbdebug import distributed

    x, y = blobs()
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    assert not distributed.active() and distributed.is_writer() and distributed.world_size() == 1
    assert distributed.unwrap(model) is model
    assert [distributed.share(103, r, 2) for r in range(2)] == [(0, 52), (52, 103)]
    assert distributed.mean_across_ranks(2.5) == 2.5
    nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=(x, y)).capture(0)
    assert nbdebug.load_run(tmp_path / "run").epochs == [0]


@pytest.mark.parametrize("n, world", [(103, 2), (5, 3), (2, 4)])
def test_shares_cover_every_sample_once(n, world):
    from nbdebug.distributed import share

    covered = np.concatenate([np.arange(*share(n, r, world)) for r in range(world)])
    np.testing.assert_array_equal(covered, np.arange(n))
