package profiles

// Profile is a loaded and validated profile whose variables are not yet
// expanded: ${HOME} depends on the user the server will run as, which is only
// known at run time. Compile turns it into a Policy. A Profile is never
// modified after loading.
type Profile struct {
	source  string // "builtin:NAME" or the file path as given
	file    string // the name errors are reported against
	dir     string // value of ${PROFILE_DIR}; "" for a built-in
	builtin bool

	name        string
	description string
	server      rawServer
	fs          rawFilesystem
	net         rawNetwork
	limits      Limits
	env         rawEnv
	onViolation OnViolation
	require     []string // layer names (require.go)
}

// Name is the profile's name.
func (p *Profile) Name() string { return p.name }

// Description is the profile's free-text description.
func (p *Profile) Description() string { return p.description }

// ServerUser is server.user as written (variables are not allowed there); ""
// when the profile does not name one.
func (p *Profile) ServerUser() string { return p.server.user }

// Source says where the profile came from: "builtin:NAME" or the file path.
func (p *Profile) Source() string { return p.source }

// pathValue is a path (or env value) that may hold variables, with its
// position so that errors found after expansion still point at the source.
type pathValue struct {
	raw  string
	tmpl template
	at   pos
}

type rawServer struct {
	executable *pathValue
	sha256     string
	user       string
}

type rawFilesystem struct {
	read, write, exec, deny []pathValue
}

type rawNetwork struct {
	egress []EgressRule // fully parsed: addresses and ports hold no variables
	unix   []pathValue
	bind   []PortRange
	budget *Budget
}

// rawEnv keeps env entries in file order; Compile sorts them.
type rawEnv struct {
	pass    []envName
	set     []envEntry
	secrets []envEntry
}

type envName struct {
	name string
	at   pos
}

type envEntry struct {
	name  string
	at    pos // of the name
	value pathValue
}
