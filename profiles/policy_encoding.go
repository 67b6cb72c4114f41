package profiles

import (
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Encodings that keep a Policy readable in `profile show --json` and let it
// survive a JSON round trip (for example when handed to the init step).

// UnmarshalText reads the form MarshalText writes: "443" or "8000-8100".
func (r *PortRange) UnmarshalText(text []byte) error {
	pr, err := parsePortRange(string(text))
	if err != nil {
		return err
	}
	*r = pr
	return nil
}

// MarshalYAML writes a single port as a number (443) and a range as
// "8000-8100", rather than the quoted text yaml.v3 makes of MarshalText.
func (r PortRange) MarshalYAML() (any, error) {
	if r.Lo == r.Hi {
		return r.Lo, nil
	}
	return r.String(), nil
}

// UnmarshalYAML reads what MarshalYAML writes.
func (r *PortRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a port must be a number or a \"lo-hi\" range", n.Line)
	}
	return r.UnmarshalText([]byte(n.Value))
}

// budgetJSON is Budget with Per as a duration string ("1m0s") rather than
// nanoseconds.
type budgetJSON struct {
	Bytes uint64 `json:"bytes"`
	Per   string `json:"per"`
}

// MarshalJSON writes {"bytes": N, "per": "1m0s"}.
func (b Budget) MarshalJSON() ([]byte, error) {
	return json.Marshal(budgetJSON{Bytes: b.Bytes, Per: b.Per.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Budget) UnmarshalJSON(data []byte) error {
	var j budgetJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	per, err := time.ParseDuration(j.Per)
	if err != nil {
		return fmt.Errorf("egress budget per: %w", err)
	}
	*b = Budget{Bytes: j.Bytes, Per: per}
	return nil
}
