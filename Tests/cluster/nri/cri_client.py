#!/usr/bin/env python3
"""The CRI client of the NRI check: a host-network pod sandbox and three containers created in it, as
kubelet would create them, then what containerd wrote into each container's OCI spec (read with ctr).

  cri_client.py CONTAINERD_SOCKET CTR IMAGE DEVICE_HOST_PATH

Prints one JSON line per container: {"name", "cpus", "mems", "placement"} and removes what it made.
Generated stubs api_pb2*.py (from the CRI api.proto) must be importable."""
import json, subprocess, sys, time
import grpc
import api_pb2 as pb
import api_pb2_grpc as rpc

sock, ctr, image, device_host_path = sys.argv[1:5]
rt = rpc.RuntimeServiceStub(grpc.insecure_channel("unix://" + sock))
meta = pb.PodSandboxMetadata(name="nri-check", uid="uid-%d" % time.time(), namespace="default", attempt=0)
# Host network, so that no CNI is needed; no hostname (there is no UTS namespace of its own to set it in).
config = pb.PodSandboxConfig(metadata=meta, log_directory="/tmp", linux=pb.LinuxPodSandboxConfig(
    security_context=pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(network=pb.NODE))))
pod = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
made = []


def create(name, devices=(), annotations=None):
    c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image),
                           command=["/bin/sleep", "100000"], log_path=name + ".log", devices=list(devices),
                           annotations=annotations or {})
    try:
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=c, sandbox_config=config)).container_id
    except grpc.RpcError as e:
        print(json.dumps({"name": name, "error": e.details()}))
        return
    made.append(cid)
    spec = json.loads(subprocess.check_output([ctr, "--address", sock, "-n", "k8s.io", "containers", "info", cid]))["Spec"]
    cpu = spec.get("linux", {}).get("resources", {}).get("cpu", {})
    print(json.dumps({"name": name, "cpus": cpu.get("cpus"), "mems": cpu.get("mems"),
                      "placement": spec.get("annotations", {}).get("numaplaced.io/placement")}))


try:
    # A device plugin's way: the VE's device file in the container's spec.
    create("ve0", devices=[pb.Device(container_path="/dev/ve0", host_path=device_host_path, permissions="rw")])
    # The annotation's way, with two exclusive cores.
    create("ve7", annotations={"numaplaced.io/device": "ve7", "numaplaced.io/exclusive-cores": "2"})
    # Nothing: left alone.
    create("plain")
    # A device the node does not have: creation refused.
    create("bad", annotations={"numaplaced.io/device": "ve99"})
finally:
    for cid in made:
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
