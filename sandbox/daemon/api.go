package daemon

import "github.com/mcpjail/mcpjail/sandbox/daemon/api"

// The daemon speaks sandbox/daemon/api, which is a package of its own so
// that mcpjail's CLI links the client without the daemon; these names keep
// the server's code in the API's terms.
type (
	conn           = api.Conn
	Request        = api.Request
	PrepareRequest = api.PrepareRequest
	EventsRequest  = api.EventsRequest
	Reply          = api.Reply
	ReplyError     = api.ReplyError
	Prepared       = api.Prepared
	Attached       = api.Attached
	Status         = api.Status
	JailStatus     = api.JailStatus
	DeclaredStatus = api.DeclaredStatus
)

// ProtocolVersion and the operations are the API's.
const (
	ProtocolVersion = api.ProtocolVersion
	OpPrepare       = api.OpPrepare
	OpAttach        = api.OpAttach
	OpRelease       = api.OpRelease
	OpStatus        = api.OpStatus
	OpEvents        = api.OpEvents
	DefaultSocket   = api.DefaultSocket
)
