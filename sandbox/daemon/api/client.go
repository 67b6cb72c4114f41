package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// dialTimeout bounds connecting to the socket; the daemon answers at once.
const dialTimeout = 5 * time.Second

// Client talks to a daemon. For a run it is the sandbox.Remote that builds
// the privileged part of the jail.
type Client struct {
	c       *Conn
	replies chan Reply
	events  chan audit.Event
	readErr error // set before replies is closed
}

// Dial connects to the daemon's socket.
func Dial(ctx context.Context, socket string) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to the mcpjail daemon at %s: %w", socket, err)
	}
	return &Client{c: NewConn(nc.(*net.UnixConn))}, nil
}

// Close closes the connection; a running jail's daemon then kills the jail.
func (c *Client) Close() error { return c.c.c.Close() }

// request sends r. When the daemon refused the connection before reading
// (an unauthorized user), the send fails and its refusal is what to report.
func (c *Client) request(r Request, fds ...int) error {
	r.V = ProtocolVersion
	err := c.c.Send(&r, fds...)
	if err == nil {
		return nil
	}
	var refusal *sandbox.Error
	if c.replies != nil {
		if _, rerr := c.next(); errors.As(rerr, &refusal) {
			return refusal
		}
	} else {
		var reply Reply
		if fs, rerr := c.c.Recv(&reply); rerr == nil && reply.Error != nil {
			closeFiles(fs)
			return &sandbox.Error{Code: reply.Error.Code, Err: fmt.Errorf("mcpjail daemon: %s", reply.Error.Message)}
		}
	}
	return err
}

// startReader demultiplexes: events go to Events, replies to next.
func (c *Client) startReader() {
	c.replies = make(chan Reply, 4)
	c.events = make(chan audit.Event, 256)
	go func() {
		defer close(c.events)
		defer close(c.replies)
		for {
			var r Reply
			fs, err := c.c.Recv(&r)
			closeFiles(fs)
			if err != nil {
				c.readErr = err
				return
			}
			if r.Event != nil {
				c.events <- *r.Event
				continue
			}
			c.replies <- r
		}
	}()
}

// next waits for the next reply that is not an event.
func (c *Client) next() (Reply, error) {
	r, ok := <-c.replies
	if !ok {
		if errors.Is(c.readErr, ErrEOF) {
			return r, errors.New("the mcpjail daemon closed the connection")
		}
		return r, fmt.Errorf("read from the mcpjail daemon: %w", c.readErr)
	}
	if r.Error != nil {
		return r, &sandbox.Error{Code: r.Error.Code, Err: fmt.Errorf("mcpjail daemon: %s", r.Error.Message)}
	}
	return r, nil
}

// Prepare implements sandbox.Remote.
func (c *Client) Prepare(req sandbox.RemoteRequest) (sandbox.RemotePrepared, error) {
	c.startReader()
	err := c.request(Request{Op: OpPrepare, Prepare: &PrepareRequest{
		Profile: req.Profile, ProfileYAML: req.ProfileYAML, ProfileLabel: req.ProfileLabel, Name: req.Name,
		Instance: req.Instance, Workdir: req.Workdir, TmpDir: req.TmpDir, AllowDegraded: req.AllowDegraded,
	}})
	if err != nil {
		return sandbox.RemotePrepared{}, err
	}
	r, err := c.next()
	if err != nil {
		return sandbox.RemotePrepared{}, err
	}
	if r.Prepared == nil || r.Prepared.Policy == nil {
		return sandbox.RemotePrepared{}, errors.New("mcpjail daemon: no policy in its answer")
	}
	return sandbox.RemotePrepared{Server: r.Prepared.Server, Policy: r.Prepared.Policy, Missing: r.Prepared.Missing}, nil
}

// Attach implements sandbox.Remote.
func (c *Client) Attach(pidfds ...int) error {
	if err := c.request(Request{Op: OpAttach}, pidfds...); err != nil {
		return err
	}
	r, err := c.next()
	if err != nil {
		return err
	}
	if r.Attached == nil {
		return errors.New("mcpjail daemon: attach not confirmed")
	}
	return nil
}

// Events implements sandbox.Remote.
func (c *Client) Events() <-chan audit.Event { return c.events }

// Release implements sandbox.Remote: the daemon tears the jail down, sends
// its last events, then confirms.
func (c *Client) Release() error {
	if err := c.request(Request{Op: OpRelease}); err != nil {
		return err
	}
	r, err := c.next()
	if err != nil {
		return err
	}
	if !r.Released {
		return errors.New("mcpjail daemon: release not confirmed")
	}
	return nil
}

// Status asks for `mcpjail status`.
func (c *Client) Status() (*Status, error) {
	c.startReader()
	if err := c.request(Request{Op: OpStatus}); err != nil {
		return nil, err
	}
	r, err := c.next()
	if err != nil {
		return nil, err
	}
	if r.Status == nil {
		return nil, errors.New("mcpjail daemon: no status in its answer")
	}
	return r.Status, nil
}

// Events streams recent events, then (with follow) new ones, to fn until
// the daemon ends the stream, ctx ends or fn returns an error.
func (c *Client) StreamEvents(ctx context.Context, req EventsRequest, fn func(audit.Event) error) error {
	if err := c.request(Request{Op: OpEvents, Events: &req}); err != nil {
		return err
	}
	go func() { <-ctx.Done(); c.c.c.Close() }()
	for {
		var r Reply
		fs, err := c.c.Recv(&r)
		closeFiles(fs)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrEOF):
			return nil
		case err != nil:
			return fmt.Errorf("read events: %w", err)
		case r.Error != nil:
			return &sandbox.Error{Code: r.Error.Code, Err: fmt.Errorf("mcpjail daemon: %s", r.Error.Message)}
		case r.EndOfBacklog:
			if !req.Follow {
				return nil
			}
		case r.Event != nil:
			if err := fn(*r.Event); err != nil {
				return err
			}
		}
	}
}
