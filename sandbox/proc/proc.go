// Package proc starts the sandbox's child processes so that none outlives it:
// each child gets its own process group (a terminal's Ctrl-C reaches only the
// sandbox, which then stops its children in order) and the parent-death
// signal SIGKILL (a sandbox killed with SIGKILL still takes them along).
package proc

import (
	"errors"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The parent-death signal fires when the *thread* that forked the child
// exits, not the process (golang/go#27505). Every child is therefore forked
// from one goroutine locked to its OS thread for the life of the process.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as we do
	for req := range spawnReqs {
		req.done <- req.cmd.Start()
	}
}

// Process is one started child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait, readable once done is closed
}

// Start starts cmd in a new process group that is killed with the caller.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go spawner()
	})
	req := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnReqs <- req
	if err := <-req.done; err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid of the process.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitError is Wait's error (nil for exit status 0), valid once Done.
func (p *Process) ExitError() error {
	<-p.done
	return p.err
}

// Describe says how the process ended: "exit status 1", "signal: killed".
func (p *Process) Describe() string {
	err := p.ExitError()
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) {
	pid := p.cmd.Process.Pid
	// The group outlives its leader when the leader leaves children behind,
	// so signal the group even after the leader exited.
	_ = syscall.Kill(-pid, sig)
	if !p.Exited() {
		_ = syscall.Kill(pid, sig)
	}
}

// Stop asks the process group to terminate (SIGTERM), waits up to grace,
// then kills it (SIGKILL) and waits for the leader to be reaped.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		p.Signal(syscall.SIGKILL) // stray children, if any
		return
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}
