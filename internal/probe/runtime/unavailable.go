package runtime

import (
	"sync"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// unavailable says once, for the life of a probe, that the host lacks what
// the probe asks (a command, a bus). The probe then passes every period
// instead of failing, and a line each period would only repeat itself.
type unavailable struct{ once sync.Once }

func (u *unavailable) log(env *probe.Env, p probe.Probe, msg string, args ...any) {
	u.once.Do(func() {
		if env.Log != nil {
			env.Log.Info(msg, append([]any{"probe", p.Name()}, args...)...)
		}
	})
}
