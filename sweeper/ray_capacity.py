"""What a Ray can hold of a sweep's trials: how many at a time on sweeper's own Ray (its CPUs and GPUs), whether
a joined cluster has a node that can take one now, and, before anything starts, a trial a Ray of sweeper's own
could never place (Tune would wait for it forever)."""

from __future__ import annotations

from search_spaces.loader import refusal
from search_spaces.schema import Spec
from search_spaces.sections import Resources
from sweeper.console import console
from sweeper.preflight import unfusable_on_gpu
from sweeper.ray_runtime import local_gpus


def resource_slots(total: float, per_trial: float) -> int:
    """How many trials of ``per_trial`` GPUs (or CPUs) Ray fits on ``total`` of them: in floating point 1 // 0.2 is
    4.0, and Ray, which counts fractions of a resource in ten-thousandths, places five."""
    return int(round(total * 10_000) // max(1, round(per_trial * 10_000)))


def local_offer() -> dict[str, float]:
    """The CPUs and GPUs a Ray of sweeper's own would offer here, as ``ray.init`` counts them."""
    from ray._private.utils import get_num_cpus

    return {"CPU": get_num_cpus(), "GPU": local_gpus()}


def check_local_resources(spec: Spec) -> None:
    """Refuse a trial that the Ray sweeper starts for itself could never place: Tune would wait for it forever.
    (A cluster may still gain the nodes it lacks, an autoscaler's, so a sweep that joins one waits.)"""
    import ray

    # a Ray already started in this process (an embedding program's) offers what it was started with
    offered = ray.cluster_resources() if ray.is_initialized() else local_offer()
    gpus = offered.get("GPU", 0)
    if spec.resources.gpu > 0 and gpus == 0:
        raise refusal(spec, ("resources", "gpu"), f"is {spec.resources.gpu:g}, but this machine has no GPU that Ray "
                      "can use (CUDA_VISIBLE_DEVICES hides them, or there is none); use gpu: 0, put GPU settings "
                      "under resources.on_gpu (used only where there is a GPU), or join a cluster with --address")
    resources = spec.resources.on_cluster(gpus)
    place = ("resources", "on_gpu") if resources is not spec.resources else ("resources",)
    if missing := [name for name in resources.custom if name not in offered]:
        raise refusal(spec, (*place, "custom", missing[0]), "asks for a custom resource, which only nodes started "
                      "with ray start --resources declare, and a Ray of sweeper's own has none: join such a cluster "
                      "with --address, or drop it")
    if resources.gpu > gpus > 0:
        raise refusal(spec, (*place, "gpu"), f"is {resources.gpu:g}, but this machine has {gpus:g} GPU"
                      f"{'s' * (gpus != 1)} for Ray: ask for at most {gpus:g}, or join a cluster with --address")
    if resources.cpu > (cpus := offered.get("CPU", 0)):
        raise refusal(spec, (*place, "cpu"), f"is {resources.cpu:g}, but this machine has {cpus:g} CPUs for Ray: "
                      f"ask for at most {cpus:g}, or join a cluster with --address")


def holds(resources: Resources, cpus: float, gpus: float) -> list[tuple[int, float, str]]:
    """``(trials, offered, name)`` per resource a trial (fused: group) takes: how many of them ``cpus`` and ``gpus``
    hold at once; the fewest is what caps a Ray of sweeper's own."""
    found = [(resource_slots(cpus, resources.cpu), cpus, "cpu")]
    if resources.gpu > 0:
        found.append((resource_slots(gpus, resources.gpu), gpus, "gpu"))
    return found


def fills_every_cpu(spec: Spec) -> bool:
    """Whether a Ray of sweeper's own here runs as many trials (fused: groups) at once as it has CPUs, as
    :func:`within_local_ray` and ``resources.on_gpu`` will fit the spec: only then is each worker it would start
    ahead of time, one per CPU, taken by a trial."""
    offer = local_offer()
    cpus, gpus = offer["CPU"], offer["GPU"]
    slots, _, _ = min(holds(spec.resources.on_cluster(gpus), cpus, gpus))
    return min(spec.budget.max_concurrent, slots) >= cpus


def within_local_ray(spec: Spec, cpus: float, gpus: float) -> Spec:
    """The spec with no more trials (fused: groups) at a time than ``cpus`` and ``gpus`` hold, and said so: like a
    group waiting for a GPU, a trial waiting for a CPU or GPU would be sampled before any result and held RUNNING."""
    resources = spec.resources
    slots, have, name = min(holds(resources, cpus, gpus))
    at_once = max(1, min(spec.budget.max_concurrent, slots))
    if at_once == spec.budget.max_concurrent:
        return spec
    taker = f"a group of up to {resources.fuse} trials" if resources.fuse > 1 else "a trial"  # fused
    console.print(f"budget.max_concurrent is {spec.budget.max_concurrent}, but this machine has {have:g} "
                  f"{name.upper()}{'s' * (have != 1)} for Ray and {taker} takes {getattr(resources, name):g} "
                  f"(resources.{name}): {at_once} at a time")
    return spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_concurrent": at_once})})


def with_gpu_resources(spec: Spec, gpus: float) -> Spec:
    """The spec with ``resources.on_gpu`` in force on a cluster of ``gpus`` GPUs, and said so."""
    on_gpu = spec.resources.on_cluster(gpus)
    # on_gpu is what a GPU offers; a space with its own entrypoint still runs there
    if on_gpu.fuse > 1 and (unfused := unfusable_on_gpu(spec)):
        console.print(unfused)
        on_gpu = on_gpu.model_copy(update={"fuse": 1})
    # no more groups at a time than the GPUs hold: a group waiting for one would be sampled blind, all RUNNING
    at_once = max(1, min(spec.budget.max_concurrent, resource_slots(gpus, on_gpu.gpu)))
    console.print(f"resources.on_gpu applies (the cluster has {gpus:g} GPU{'s' * (gpus != 1)}): {on_gpu.cpu:g} "
                  f"CPU and {on_gpu.gpu:g} GPU per Ray trial" + (f", up to {on_gpu.fuse} trials fused in each"
                  if on_gpu.fuse > 1 else "") + f", {at_once} at a time")
    return spec.model_copy(update={"resources": on_gpu,
                                   "budget": spec.budget.model_copy(update={"max_concurrent": at_once})})


def no_node_holds(spec: Spec, place: str, nodes: list[dict[str, float]]) -> str | None:
    """Why none of a joined cluster's ``nodes`` (their total resources) can hold a trial now, or None where one can.
    Tune waits for such a node, rightly (an autoscaler may add one), but says so only after a minute: Ray places a
    trial's resources on one node, so a cluster's sum (2 nodes of 1 CPU for a trial of 2) holds nothing."""
    resources = spec.resources
    asked = {k: v for k, v in {"CPU": resources.cpu, "GPU": resources.gpu, **resources.custom}.items() if v > 0}

    def fits(node: dict[str, float], name: str) -> bool:  # Ray counts in ten-thousandths (resource_slots)
        return round(node.get(name, 0) * 10_000) >= round(asked[name] * 10_000)

    if any(all(fits(node, name) for name in asked) for node in nodes):
        return None
    if short := [name for name in asked if not any(fits(node, name) for node in nodes)]:
        name, most = short[0], max((node.get(short[0], 0) for node in nodes), default=0)
        if name in ("CPU", "GPU"):  # counted ("1 CPU", "2 GPUs"); a custom resource is a name with an amount
            key = f"{place}.{name.lower()}"
            has = f"the largest node has {most:g} {name}{'s' * (most != 1)}" if most else f"no node has a {name}"
        else:
            key = f"{place}.custom.{name}"
            has = f"the most a node has is {most:g}" if most else f"no node has {name}"
        why = f"{key} is {asked[name]:g}, {has}"
    else:
        why = f"no node has {' and '.join(f'{amount:g} {name}' for name, amount in asked.items())} at once"
    taker = f"a group of up to {resources.fuse} trials" if resources.fuse > 1 else "a trial"  # fused
    return (f"no node of the cluster can hold {taker} now ({why}): waiting for a node that can (an autoscaler may "
            "add one); Ctrl-C stops")
