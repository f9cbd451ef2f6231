"""The launch command lines (`train/launch.py`) without launching anything: each form the README documents is
built, then read back by DeepSpeed's and torchrun's own argument parsers and resource selection, and by abz's
parser; a bad hostfile or flag combination is a `ConfigError` naming the line or the flag.
(The slow tests in `test_launcher.py` run the two-node forms for real on this machine.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autobert_zero.cli import build_parser
from autobert_zero.config.load import batch_plan
from autobert_zero.errors import ConfigError
from autobert_zero.train.launch import (
    ABZ_MODULE,
    deepspeed_command,
    parse_hostfile,
    planned_processes,
    read_hostfile,
    torchrun_command,
)
from tests.support.training import tiny_config

HOSTFILE = "# two nodes, four GPUs each\nworker-1 slots=4\n\nworker-2 slots=4  # the second\n"
PRETRAIN = ["pretrain", "--config", "configs/base.yaml", "--out", "runs/base"]
EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "hostfile.example"


def hostfile(tmp_path: Path, text: str = HOSTFILE) -> Path:
    path = tmp_path / "hostfile"
    path.write_text(text, encoding="utf-8")
    return path


def deepspeed_runner() -> Any:
    from deepspeed.launcher import runner

    return runner


def test_a_hostfile_reads_as_deepspeed_reads_it() -> None:
    runner = deepspeed_runner()
    assert parse_hostfile(HOSTFILE) == {"worker-1": 4, "worker-2": 4}
    assert parse_hostfile(HOSTFILE) == dict(runner._parse_hostfile(HOSTFILE.splitlines(keepends=True)))
    assert list(read_hostfile(EXAMPLE)) == ["node-a", "node-b"]  # the shipped example is valid


@pytest.mark.parametrize("text, message", [
    ("a slots=2\nb slots=1\na slots=2\n", r"hostfile:3: host a is listed twice \(first at line 1\)"),
    ("a slots=0\n", r"hostfile:1: a has slots=0; a host needs at least one slot"),
    ("a slots=2\nb slots=two\n", r"hostfile:2: slots=two is not a whole number"),
    ("a slots=4.5\n", r"hostfile:1: slots=4\.5 is not a whole number"),
    ("a slots=-1\n", r"hostfile:1: slots=-1 is not a whole number"),
    ("a\n", r"hostfile:1: expected `HOST slots=N`"),
    ("a slots=1 b\n", r"hostfile:1: expected `HOST slots=N`"),
    ("a:0 slots=1\n", r"hostfile:1: host name 'a:0' may hold"),
    ("", r"hostfile: no hosts \(the file is empty or holds only comments\)"),
    ("# only a comment\n\n", r"hostfile: no hosts"),
])
def test_a_bad_hostfile_is_a_config_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_hostfile(text)


def test_deepspeed_also_refuses_what_it_can_detect_but_takes_slots_it_should_not() -> None:
    """Why the stricter check: DeepSpeed's own reader takes `slots=4.5` as 4 and `slots=0` as a host."""
    runner = deepspeed_runner()
    for bad in ("a slots=1\na slots=1\n", "a\n", ""):
        with pytest.raises(ValueError):
            runner._parse_hostfile(bad.splitlines())
    assert dict(runner._parse_hostfile(["a slots=4.5"])) == {"a": 4}
    assert dict(runner._parse_hostfile(["a slots=0"])) == {"a": 0}


def test_a_missing_hostfile_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hostfile not found: .*nope"):
        read_hostfile(tmp_path / "nope")


@pytest.mark.parametrize("flags", [
    {}, {"num_nodes": 1}, {"num_gpus": 2}, {"num_nodes": 1, "num_gpus": 1}, {"include": "worker-2"},
    {"include": "worker-2:1,3@worker-1:0"}, {"exclude": "worker-1"}, {"exclude": "worker-1:0,1@worker-2:3"},
])
def test_the_selected_slots_are_deepspeeds(flags: dict[str, Any]) -> None:
    runner = deepspeed_runner()
    hosts = parse_hostfile(HOSTFILE)
    theirs = runner.parse_inclusion_exclusion(hosts, flags.get("include", ""), flags.get("exclude", ""))
    theirs = runner.apply_num_nodes_and_gpus(theirs, flags.get("num_nodes", -1), flags.get("num_gpus", -1))
    ours = planned_processes(hosts, **flags)
    assert ours == {host: list(slots) for host, slots in theirs.items()}
    assert list(ours) == list(theirs)  # hostfile order: node ranks follow it


@pytest.mark.parametrize("flags, message", [
    ({"include": "worker-1", "exclude": "worker-2"}, "--include and --exclude cannot be given together"),
    ({"include": "worker-1", "num_gpus": 1}, "cannot be combined with --num_nodes/--num_gpus"),
    ({"include": "worker-3"}, r"--include worker-3: host 'worker-3' is not in the hostfile"),
    ({"exclude": "worker-1:4"}, r"worker-1 has slots 0..3, not 4"),
    ({"exclude": "worker-1@worker-2"}, "leaves no slot"),
    ({"num_nodes": 3}, r"--num_nodes 3: the hostfile lists 2 host"),
    ({"num_gpus": 5}, r"--num_gpus 5: expected 1 up to the slots of every host \(worker-1 has 4"),
])
def test_flags_deepspeed_refuses_or_that_select_nothing_are_config_errors(flags: dict[str, Any],
                                                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        planned_processes(parse_hostfile(HOSTFILE), **flags)


def parsed_by_deepspeed(argv: list[str]) -> Any:
    return deepspeed_runner().parse_args(argv[1:])


def test_the_four_forms_parse_as_the_launchers_and_abz_read_them(tmp_path: Path) -> None:
    hf = hostfile(tmp_path)
    one = deepspeed_command(PRETRAIN, num_gpus=2, master_port=29600)
    assert one == ["deepspeed", "--num_gpus", "2", "--master_port", "29600", "--no_local_rank", "--module",
                   ABZ_MODULE, *PRETRAIN]
    fanned = deepspeed_command(PRETRAIN, hostfile=hf, include="worker-1:0,1@worker-2:0,1", master_addr="10.0.0.1",
                               master_port=29600)
    assert fanned[:7] == ["deepspeed", "--hostfile", str(hf), "--include", "worker-1:0,1@worker-2:0,1",
                          "--master_addr", "10.0.0.1"]
    per_node = [deepspeed_command(PRETRAIN, hostfile=hf, node_rank=r, master_addr="10.0.0.1") for r in (0, 1)]
    assert per_node[1][3:7] == ["--no_ssh", "--node_rank", "1", "--master_addr"]
    for argv in (one, fanned, *per_node):
        args = parsed_by_deepspeed(argv)
        assert (args.module, args.no_local_rank, args.user_script, args.user_args) == (
            True, True, ABZ_MODULE, PRETRAIN)
    assert parsed_by_deepspeed(per_node[1]).node_rank == 1
    assert parsed_by_deepspeed(per_node[1]).no_ssh
    assert parsed_by_deepspeed(fanned).master_port == 29600

    from torch.distributed.run import get_args_parser

    torch_form = torchrun_command(PRETRAIN, nnodes=2, node_rank=1, nproc_per_node=4, master_addr="10.0.0.1",
                                  master_port=29600)
    args = get_args_parser().parse_args(torch_form[1:])
    assert (args.nnodes, args.node_rank, args.nproc_per_node, args.master_addr, args.master_port) == (
        "2", 1, "4", "10.0.0.1", 29600)
    assert (args.module, args.training_script, args.training_script_args) == (True, ABZ_MODULE, PRETRAIN)
    assert build_parser().parse_args(PRETRAIN).command == "pretrain"  # what follows the module is abz's


@pytest.mark.parametrize("kwargs, message", [
    ({"node_rank": 0}, "need a hostfile"),
    ({"num_nodes": 2}, "need a hostfile"),
    ({"hostfile": "HF", "node_rank": 0}, "--no_ssh --node_rank needs --master_addr"),
    ({"hostfile": "HF", "node_rank": 2, "master_addr": "a"}, r"--node_rank 2: the selected hosts are worker-1, "
                                                              r"worker-2 \(node ranks 0..1"),
    ({"hostfile": "HF", "include": "worker-2", "node_rank": 1, "master_addr": "a"}, r"node ranks 0..0"),
    ({"master_port": 0}, r"--master_port 0: expected a TCP port"),
    ({"master_port": 70000}, r"--master_port 70000"),
])
def test_bad_command_lines_are_refused_before_anything_runs(tmp_path: Path, kwargs: dict[str, Any],
                                                            message: str) -> None:
    if kwargs.get("hostfile") == "HF":
        kwargs = {**kwargs, "hostfile": hostfile(tmp_path)}
    with pytest.raises(ConfigError, match=message):
        deepspeed_command(PRETRAIN, **kwargs)
    with pytest.raises(ConfigError, match="no abz sub-command"):
        deepspeed_command([])
    with pytest.raises(ConfigError, match=r"--node_rank 2: expected 0..1 for --nnodes 2"):
        torchrun_command(PRETRAIN, nnodes=2, node_rank=2, nproc_per_node=1)


def test_the_batch_identity_holds_for_the_planned_world_size(tmp_path: Path) -> None:
    """train_batch_size = micro × accumulation × world size: a config whose pretrain.batch_size was written for
    another number of processes is a ConfigError spelling out the product, before a launch."""
    world = sum(len(slots) for slots in planned_processes(parse_hostfile(HOSTFILE), num_gpus=2).values())
    cfg = tiny_config(tmp_path, pretrain={"micro_batch_size": 4, "gradient_accumulation_steps": 2})
    assert batch_plan(cfg, "pretrain", world).train_batch_size == 32
    cfg.pretrain.batch_size = 32
    assert batch_plan(cfg, "pretrain", world).deepspeed_keys() == {
        "train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2}
    with pytest.raises(ConfigError, match=r"pretrain\.batch_size = 32 but micro_batch_size × gradient_accumulation_"
                                          r"steps × world_size = 4 × 2 × 2 = 16; train_batch_size must equal"):
        batch_plan(cfg, "pretrain", 2)
