"""The command lines that start `abz` on several processes or nodes, and the check of a DeepSpeed hostfile.

Nothing here starts a process. `deepspeed_command` and `torchrun_command` return the argv of the forms the
README's "Scaling out" section documents, checked first: a bad hostfile, a filter naming an unknown host or
slot, a node rank out of range or flags DeepSpeed would refuse together are a `ConfigError` naming the
problem, before any node is contacted. `planned_processes` says which slots (processes) a `deepspeed` command
starts on which host; their number is the world size of the batch arithmetic (`config.load.batch_plan`:
train_batch_size = micro_batch_size × gradient_accumulation_steps × world size).

The forms (DeepSpeed 0.19, `deepspeed/launcher/runner.py`; on GPUs a slot is a GPU, on the CPU accelerator a
process):

1. one node: `deepspeed --num_gpus G --master_port P --no_local_rank --module autobert_zero.cli ARGS`;
2. several nodes from one shell (pdsh over passwordless ssh, or `--launcher openmpi|slurm|...`):
   `deepspeed --hostfile H [--num_nodes N] [--num_gpus G | --include S | --exclude S] --master_addr A ...`;
3. one command per node, no ssh: on the node listed r-th in the hostfile,
   `deepspeed --hostfile H --no_ssh --node_rank r --master_addr A --master_port P ...`;
4. torchrun, one command per node: `torchrun --nnodes N --node_rank r --nproc_per_node G --master_addr A
   --master_port P -m autobert_zero.cli ARGS` (abz reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
   MASTER_PORT as under the deepspeed launcher).

Launcher flags go before `--module`: after it they are arguments of abz. `--no_local_rank` because abz takes
no `--local_rank` argument (it reads LOCAL_RANK). Every job sharing a node needs its own `--master_port`
(`engine.free_port` finds one); a port in use is an error naming it (`engine.init_distributed`).

Environment: form 2 exports to every node the variables whose names start with PYTHON, MLFLOW, MV2 or UCX
(and NCCL on CUDA) plus each `KEY=VALUE` line of a `.deepspeed_env` file in the home or working directory of
the launching shell (`DS_ENV_FILE` names another file); forms 1, 3 and 4 start the processes with their own
shell's environment and read no `.deepspeed_env`, so set variables (OMP_NUM_THREADS, ABZ_DATA_DIR, ...) on
each node, e.g. in the job script.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from autobert_zero.errors import ConfigError

ABZ_MODULE = "autobert_zero.cli"
"""The module the launchers run (`python -m autobert_zero.cli` is `abz`)."""
DEFAULT_MASTER_PORT = 29500
"""DeepSpeed's and torch's default rendezvous port: fine for one job per node; give others their own."""
DEFAULT_HOSTFILE = "/job/hostfile"
"""Where `deepspeed` looks for a hostfile when `--hostfile` is not given (it then uses local slots only)."""
_HOST = re.compile(r"^[A-Za-z0-9_.\-\[\]]+$")
"""A host name as a hostfile may give it (no `:` or `@`, which the include/exclude syntax reserves)."""


def parse_hostfile(text: str, where: str = "hostfile") -> dict[str, int]:
    """Host → slots of a DeepSpeed (MPI-style) hostfile, in file order: one `HOST slots=N` a line (N ≥ 1),
    `#` comments and blank lines ignored. Stricter than DeepSpeed's own reader, which would take the `4` of
    `slots=4.5` and ignore what follows: any other line, a host given twice, `slots=0` or a file without
    hosts is a `ConfigError` naming `where` and the line."""
    hosts: dict[str, int] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        at = f"{where}:{number}"
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("slots="):
            raise ConfigError(f"{at}: expected `HOST slots=N` (e.g. `worker-1 slots=4`), got {raw.strip()!r}")
        host, count = parts[0], parts[1][len("slots="):]
        if not _HOST.match(host):
            raise ConfigError(f"{at}: host name {host!r} may hold letters, digits and `-_.[]` only (`:` and `@` "
                              f"belong to the --include/--exclude syntax)")
        if not count.isdigit() or not count.isascii():
            raise ConfigError(f"{at}: slots={count} is not a whole number; give the GPUs (or, on CPUs, processes) "
                              f"of {host} as `slots=N`")
        if int(count) == 0:
            raise ConfigError(f"{at}: {host} has slots=0; a host needs at least one slot (remove the line, or leave "
                              f"the host out with --exclude {host})")
        if host in hosts:
            raise ConfigError(f"{at}: host {host} is listed twice (first at line {first_line[host]}); DeepSpeed "
                              f"refuses that: give each host one line with all its slots")
        hosts[host], first_line[host] = int(count), number
    if not hosts:
        raise ConfigError(f"{where}: no hosts (the file is empty or holds only comments); expected one "
                          f"`HOST slots=N` line per node")
    return hosts


def read_hostfile(path: str | os.PathLike[str]) -> dict[str, int]:
    """`parse_hostfile` of a file; a missing or unreadable file is a `ConfigError` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"hostfile not found: {p} (expected one `HOST slots=N` line per node)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"hostfile {p} cannot be read: {exc}") from None
    return parse_hostfile(text, str(p))


def _parse_filter(spec: str, hosts: Mapping[str, int], flag: str) -> dict[str, list[int]]:
    """`NAME[:SLOT[,SLOT...]][@NAME...]` → host → slots ([] = all of them), checked against `hosts`."""
    chosen: dict[str, list[int]] = {}
    for part in spec.split("@"):
        name, _, slots = part.partition(":")
        if name not in hosts:
            raise ConfigError(f"{flag} {spec}: host {name!r} is not in the hostfile (hosts: {', '.join(hosts)})")
        ids: list[int] = []
        for text in slots.split(",") if slots else []:
            if not text.isdigit() or not text.isascii():
                raise ConfigError(f"{flag} {spec}: slot {text!r} of {name} is not a whole number")
            if int(text) >= hosts[name]:
                raise ConfigError(f"{flag} {spec}: {name} has slots 0..{hosts[name] - 1}, not {text}")
            ids.append(int(text))
        chosen[name] = sorted(set(chosen.get(name, []) + ids))
    return chosen


def planned_processes(hosts: Mapping[str, int], num_nodes: int | None = None, num_gpus: int | None = None,
                      include: str | None = None, exclude: str | None = None) -> dict[str, list[int]]:
    """Host → slot ids a `deepspeed` command with these flags starts processes on (DeepSpeed's resource
    selection: `--include`/`--exclude` filters, or the first `num_nodes` hosts and slots 0..num_gpus-1 of
    each). Flags DeepSpeed refuses together, and a selection that leaves nothing, are a `ConfigError`."""
    if include and exclude:
        raise ConfigError("--include and --exclude cannot be given together (DeepSpeed refuses it)")
    if (include or exclude) and (num_nodes is not None or num_gpus is not None):
        raise ConfigError("--include/--exclude cannot be combined with --num_nodes/--num_gpus (DeepSpeed refuses "
                          "it); say which slots to use in the filter alone")
    active = {host: list(range(slots)) for host, slots in hosts.items()}
    if include:
        chosen = _parse_filter(include, hosts, "--include")
        active = {host: ids or list(range(hosts[host])) for host, ids in chosen.items()}
        active = {host: active[host] for host in hosts if host in active}  # hostfile order, as DeepSpeed
    elif exclude:
        for host, ids in _parse_filter(exclude, hosts, "--exclude").items():
            active[host] = [i for i in active[host] if ids and i not in ids]
        active = {host: ids for host, ids in active.items() if ids}
    if num_nodes is not None:
        if not 0 < num_nodes <= len(hosts):
            raise ConfigError(f"--num_nodes {num_nodes}: the hostfile lists {len(hosts)} host(s)")
        active = dict(list(active.items())[:num_nodes])
    if num_gpus is not None:
        short = [host for host, slots in hosts.items() if host in active and slots < num_gpus]
        if num_gpus < 1 or short:
            raise ConfigError(f"--num_gpus {num_gpus}: expected 1 up to the slots of every host"
                              + (f" ({', '.join(f'{h} has {hosts[h]}' for h in short)})" if short else ""))
        active = {host: list(range(num_gpus)) for host in active}
    if not active:
        raise ConfigError("the --include/--exclude filter leaves no slot to run on")
    return active


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--master_port {port}: expected a TCP port in 1..65535")


def deepspeed_command(abz_args: Sequence[str], *, hostfile: str | os.PathLike[str] | None = None,
                      num_nodes: int | None = None, num_gpus: int | None = None, include: str | None = None,
                      exclude: str | None = None, node_rank: int | None = None, master_addr: str | None = None,
                      master_port: int = DEFAULT_MASTER_PORT, launcher: str | None = None,
                      executable: str = "deepspeed") -> list[str]:
    """The argv of `deepspeed ... --module autobert_zero.cli ABZ_ARGS`, checked (see the module doc).

    Without `hostfile`: one node, `num_gpus` processes (form 1; DeepSpeed reads /job/hostfile if that exists,
    so on a cluster that has one, pass it here). With `hostfile` (read and checked here): forms 2 and 3;
    `node_rank` selects form 3 (`--no_ssh`), which needs `master_addr` (DeepSpeed would otherwise ssh to the
    first host to find it) and a node rank below the number of selected hosts."""
    if not abz_args:
        raise ConfigError("no abz sub-command to launch (e.g. ['pretrain', '--config', 'C', '--out', 'D'])")
    _check_port(master_port)
    argv = [executable]
    if hostfile is None:
        if num_nodes not in (None, 1) or node_rank is not None:
            raise ConfigError("several nodes (--num_nodes > 1, --no_ssh --node_rank) need a hostfile listing them")
        selected = planned_processes({"localhost": num_gpus or 1}, None, None, include, exclude)
        argv += ["--num_gpus", str(num_gpus)] if num_gpus is not None else []
    else:
        hosts = read_hostfile(hostfile)
        selected = planned_processes(hosts, num_nodes, num_gpus, include, exclude)
        argv += ["--hostfile", str(hostfile)]
        argv += ["--num_nodes", str(num_nodes)] if num_nodes is not None else []
        argv += ["--num_gpus", str(num_gpus)] if num_gpus is not None else []
    argv += ["--include", include] if include else []
    argv += ["--exclude", exclude] if exclude else []
    if node_rank is not None:
        if master_addr is None:
            raise ConfigError("--no_ssh --node_rank needs --master_addr (the address of the hostfile's first "
                              "selected host, reachable from every node)")
        if not 0 <= node_rank < len(selected):
            raise ConfigError(f"--node_rank {node_rank}: the selected hosts are {', '.join(selected)} "
                              f"(node ranks 0..{len(selected) - 1}, in hostfile order)")
        argv += ["--no_ssh", "--node_rank", str(node_rank)]
    if launcher is not None:
        argv += ["--launcher", launcher]
    argv += ["--master_addr", master_addr] if master_addr is not None else []
    argv += ["--master_port", str(master_port), "--no_local_rank", "--module", ABZ_MODULE, *abz_args]
    return argv


def torchrun_command(abz_args: Sequence[str], *, nproc_per_node: int, nnodes: int = 1, node_rank: int = 0,
                     master_addr: str = "127.0.0.1", master_port: int = DEFAULT_MASTER_PORT,
                     executable: str = "torchrun") -> list[str]:
    """The argv of `torchrun ... -m autobert_zero.cli ABZ_ARGS` for node `node_rank` of `nnodes` (static
    rendezvous at master_addr:master_port, which node 0's torchrun serves), checked."""
    if not abz_args:
        raise ConfigError("no abz sub-command to launch (e.g. ['pretrain', '--config', 'C', '--out', 'D'])")
    _check_port(master_port)
    if nnodes < 1 or nproc_per_node < 1:
        raise ConfigError(f"--nnodes {nnodes} --nproc_per_node {nproc_per_node}: expected at least 1 of each")
    if not 0 <= node_rank < nnodes:
        raise ConfigError(f"--node_rank {node_rank}: expected 0..{nnodes - 1} for --nnodes {nnodes}")
    return [executable, "--nnodes", str(nnodes), "--node_rank", str(node_rank), "--nproc_per_node",
            str(nproc_per_node), "--master_addr", master_addr, "--master_port", str(master_port),
            "-m", ABZ_MODULE, *abz_args]
