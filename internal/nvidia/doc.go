// Package nvidia watches NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml,
// libnvidia-ml.so.1 loaded at run time) without DCGM, which EKS AMIs do not
// install: XID events as they happen, and by polling double-bit ECC errors,
// retired pages and row remapping, NVLink errors, PCIe replays and link
// downgrades, thermal and power slowdowns, GPU fabric state and health,
// InfoROM validity, and the GPU count against the device files and the
// instance type. Each poll's per-GPU readings go to a StatusBoard, which the
// daemon publishes for nodehealthctl gpu.
//
// XIDs are also read from kmsg by the rule catalogue, so they are seen
// while NVML is missing or hung; the two sightings of one XID become one
// finding because this package reports an XID as an event that the kmsg
// XID rules themselves turn into the finding (xidEvent). Every NVML call runs on one worker with a deadline
// (Caller): a hung driver suspends the checks and is reported, and never
// blocks the daemon or multiplies goroutines.
//
// docs/accelerators.md describes the reasons, thresholds and what DCGM
// covers that this package does not.
package nvidia
