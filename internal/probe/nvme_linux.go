package probe

import (
	"context"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nvmePassthruCmd is the kernel's struct nvme_passthru_cmd (linux/nvme_ioctl.h),
// 72 bytes with no padding on every architecture.
type nvmePassthruCmd struct {
	opcode      uint8
	flags       uint8
	rsvd1       uint16
	nsid        uint32
	cdw2, cdw3  uint32
	metadata    uint64
	addr        uint64
	metadataLen uint32
	dataLen     uint32
	cdw10       uint32
	cdw11       uint32
	cdw12       uint32
	cdw13       uint32
	cdw14       uint32
	cdw15       uint32
	timeoutMs   uint32
	result      uint32
}

// nvmeIoctlAdminCmd is NVME_IOCTL_ADMIN_CMD: _IOWR('N', 0x41, struct nvme_passthru_cmd).
const nvmeIoctlAdminCmd = 0xC0484E41

const (
	nvmeOpGetLogPage = 0x02
	nvmeOpIdentify   = 0x06
	// nvmeIdentifyController is CNS 01h in CDW10.
	nvmeIdentifyController = 0x01
)

// ioctlNVMeAdmin is the real NVMeAdmin. It needs CAP_SYS_ADMIN, as every
// NVMe admin passthrough does. No NVMe EBS device exists where the tests
// run, so this path is exercised on EC2 only.
type ioctlNVMeAdmin struct{}

func (ioctlNVMeAdmin) IdentifyController(ctx context.Context, dev string) ([]byte, error) {
	buf := make([]byte, 4096)
	cmd := nvmePassthruCmd{opcode: nvmeOpIdentify, cdw10: nvmeIdentifyController}
	return buf, nvmeAdminCmd(dev, &cmd, buf)
}

func (ioctlNVMeAdmin) LogPage(ctx context.Context, dev string, lid uint8, size int) ([]byte, error) {
	buf := make([]byte, size)
	// CDW10: log page ID in bits 0–7, number of dwords minus one (lower
	// 16 bits) in bits 16–31. The EBS page is read for namespace 1, as
	// Amazon's tools do.
	numd := uint32(size/4 - 1)
	cmd := nvmePassthruCmd{opcode: nvmeOpGetLogPage, nsid: 1, cdw10: uint32(lid) | (numd&0xFFFF)<<16, cdw11: numd >> 16}
	return buf, nvmeAdminCmd(dev, &cmd, buf)
}

func nvmeAdminCmd(dev string, cmd *nvmePassthruCmd, buf []byte) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	cmd.dataLen = uint32(len(buf))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(cmd)))
	// The kernel writes into buf through an address the garbage collector
	// cannot see: keep buf alive until the call has returned.
	runtime.KeepAlive(buf)
	if errno != 0 {
		return &os.PathError{Op: "NVMe admin command", Path: dev, Err: errno}
	}
	return nil
}
