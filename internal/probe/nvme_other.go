//go:build !linux

package probe

import (
	"context"
	"errors"
)

// ioctlNVMeAdmin has no implementation off Linux, where no EBS volume is.
type ioctlNVMeAdmin struct{}

var errNoNVMeAdmin = errors.New("NVMe admin commands need Linux")

func (ioctlNVMeAdmin) IdentifyController(context.Context, string) ([]byte, error) {
	return nil, errNoNVMeAdmin
}

func (ioctlNVMeAdmin) LogPage(context.Context, string, uint8, int) ([]byte, error) {
	return nil, errNoNVMeAdmin
}
