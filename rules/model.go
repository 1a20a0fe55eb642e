package rules

import (
	"github.com/goccy/go-yaml/ast"

	"github.com/deviceless/deviceless/protocol"
)

// The types in this file mirror the rule file format one to one (docs/rules.md). They are
// decoded strictly: an unknown key is an error at its position.

// FileDef is one rule file.
type FileDef struct {
	Functions FunctionDefs `yaml:"functions"`
	Rules     RuleDefs     `yaml:"rules"`
}

// FunctionDef is one entry of `functions`: its name and the canonical spec.
type FunctionDef struct {
	Name Name
	Spec protocol.FunctionSpec
	// Module is a wasm function's module, read from the file its spec named (Load does
	// it); the spec then names it by digest.
	Module []byte
}

// RuleDef is one rule.
type RuleDef struct {
	Name        Name         `yaml:"name"`
	Description string       `yaml:"description"`
	On          Filters      `yaml:"on"`
	Schedule    *ScheduleDef `yaml:"schedule"`
	If          Expr         `yaml:"if"`
	Key         Expr         `yaml:"key"`
	Window      *WindowDef   `yaml:"window"`
	For         Duration     `yaml:"for"`
	Throttle    Duration     `yaml:"throttle"`
	MaxKeys     int          `yaml:"max_keys"`
	Disabled    bool         `yaml:"disabled"`
	Do          ActionDefs   `yaml:"do"`

	Pos Pos `yaml:"-"`
}

// WindowDef is a sliding window over the value `of`, by time (`over`) or by count.
type WindowDef struct {
	Over       Duration `yaml:"over"`
	Count      int      `yaml:"count"`
	Of         Expr     `yaml:"of"`
	MaxSamples int      `yaml:"max_samples"`
}

// ScheduleDef is a rule's `schedule`: a fixed interval (`every`) or a cron expression in
// a time zone, and whether a run missed while the engine was down runs once at its start.
type ScheduleDef struct {
	Every   Duration `yaml:"every"`
	Cron    Name     `yaml:"cron"`
	Zone    Name     `yaml:"zone"`
	CatchUp bool     `yaml:"catch_up"`

	Pos      Pos `yaml:"-"` // the mapping
	EveryPos Pos `yaml:"-"` // the value of `every`, when given
}

// UnmarshalYAML reads the mapping key by key, remembering where it and `every` are.
func (d *ScheduleDef) UnmarshalYAML(n ast.Node) error {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return errorf(nodePos(n), "schedule must be a mapping: {every: 30s} or {cron: \"0 6 * * *\", zone: Europe/Berlin}")
	}
	d.Pos = nodePos(m)
	for _, kv := range m.Values {
		if k, _ := scalarText(kv.Key); k == "every" {
			d.EveryPos = nodePos(kv.Value)
		}
	}
	return decodeFields(m, d)
}

// ActionDef is one entry of a rule's `do` list: exactly one of invoke, actuate, publish.
type ActionDef struct {
	Invoke  *Name            `yaml:"invoke"`
	Target  *protocol.Target `yaml:"target"`
	Args    Args             `yaml:"args"`
	Actuate *ActuateDef      `yaml:"actuate"`
	Publish *PublishDef      `yaml:"publish"`

	Pos Pos `yaml:"-"`
}

// ActuateDef drives an agent's output line.
type ActuateDef struct {
	Target *protocol.Target `yaml:"target"`
	Line   Name             `yaml:"line"`
	Value  Expr             `yaml:"value"`
	For    Duration         `yaml:"for"`
	// Expire is how long the actuation may take to reach the agent (default
	// DefaultActuationExpiry): later, the broker and the agent drop it.
	Expire *Duration `yaml:"expire"`
}

// PublishDef publishes an MQTT message; topic and payload are expressions.
type PublishDef struct {
	Topic   Expr `yaml:"topic"`
	Payload Expr `yaml:"payload"`
	QoS     int  `yaml:"qos"`
	Retain  bool `yaml:"retain"`
}

// FunctionDefs keeps functions in file order with the position of each name.
type FunctionDefs []*FunctionDef

// UnmarshalYAML reads a mapping of name to function.
func (fs *FunctionDefs) UnmarshalYAML(n ast.Node) error {
	if n.Type() == ast.NullType {
		return nil
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return errorf(nodePos(n), "functions must be a mapping of name to function")
	}
	for _, kv := range m.Values {
		var name Name
		if err := name.UnmarshalYAML(kv.Key); err != nil {
			return err
		}
		def := &FunctionDef{}
		if kv.Value.Type() != ast.NullType {
			m, ok := kv.Value.(*ast.MappingNode)
			if !ok {
				return errorf(nodePos(kv.Value), "function %q must be a mapping (runtime/image, code/command, timeout, memory, ...)", name.Value)
			}
			if err := decodeFields(m, &def.Spec); err != nil {
				return err
			}
		}
		def.Name = name
		*fs = append(*fs, def)
	}
	return nil
}

// RuleDefs is the list of rules with the position of each entry.
type RuleDefs []*RuleDef

// UnmarshalYAML reads a sequence of rules.
func (rs *RuleDefs) UnmarshalYAML(n ast.Node) error {
	if n.Type() == ast.NullType {
		return nil
	}
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		return errorf(nodePos(n), "rules must be a list")
	}
	for _, item := range s.Values {
		if _, ok := item.(*ast.MappingNode); !ok {
			return errorf(nodePos(item), "a rule must be a mapping with name, on, if and do")
		}
		def := &RuleDef{Pos: nodePos(item)}
		if err := decodeStrict(item, def); err != nil {
			return err
		}
		*rs = append(*rs, def)
	}
	return nil
}

// Filters is one topic filter or a list of them.
type Filters []Name

// UnmarshalYAML reads a scalar or a sequence of scalars.
func (f *Filters) UnmarshalYAML(n ast.Node) error {
	if s, ok := n.(*ast.SequenceNode); ok {
		for _, item := range s.Values {
			var nm Name
			if err := nm.UnmarshalYAML(item); err != nil {
				return errorf(nodePos(item), "a topic filter must be a string")
			}
			*f = append(*f, nm)
		}
		return nil
	}
	var nm Name
	if err := nm.UnmarshalYAML(n); err != nil {
		return errorf(nodePos(n), "on: expected a topic filter or a list of them")
	}
	*f = Filters{nm}
	return nil
}

// StringList is one string or a list of them (a command).
type StringList []string

// UnmarshalYAML reads a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n ast.Node) error {
	if s, ok := n.(*ast.SequenceNode); ok {
		for _, item := range s.Values {
			v, ok := scalarText(item)
			if !ok {
				return errorf(nodePos(item), "expected a string")
			}
			*l = append(*l, v)
		}
		return nil
	}
	v, ok := scalarText(n)
	if !ok {
		return errorf(nodePos(n), "expected a string or a list of strings")
	}
	*l = StringList{v}
	return nil
}

// Arg is one named argument expression.
type Arg struct {
	Name Name
	Expr Expr
}

// Args keeps argument expressions in file order.
type Args []Arg

// UnmarshalYAML reads a mapping of name to expression.
func (as *Args) UnmarshalYAML(n ast.Node) error {
	if n.Type() == ast.NullType {
		return nil
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return errorf(nodePos(n), "args must be a mapping of name to expression")
	}
	for _, kv := range m.Values {
		var a Arg
		if err := a.Name.UnmarshalYAML(kv.Key); err != nil {
			return err
		}
		if err := a.Expr.UnmarshalYAML(kv.Value); err != nil {
			return err
		}
		*as = append(*as, a)
	}
	return nil
}

// ActionDefs is a rule's `do` list with the position of each entry.
type ActionDefs []*ActionDef

// UnmarshalYAML reads a sequence of actions.
func (as *ActionDefs) UnmarshalYAML(n ast.Node) error {
	if n.Type() == ast.NullType {
		return nil
	}
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		return errorf(nodePos(n), "do must be a list of actions (invoke, actuate, publish)")
	}
	for _, item := range s.Values {
		if _, ok := item.(*ast.MappingNode); !ok {
			return errorf(nodePos(item), "an action must be a mapping with invoke, actuate or publish")
		}
		def := &ActionDef{Pos: nodePos(item)}
		if err := decodeStrict(item, def); err != nil {
			return err
		}
		*as = append(*as, def)
	}
	return nil
}
