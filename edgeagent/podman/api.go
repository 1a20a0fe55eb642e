package podman

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	spec "github.com/opencontainers/runtime-spec/specs-go"
)

// The handful of libpod REST calls the runtime makes, on top of the bindings' connection
// (bindings.Connection.DoRequest: URL and API version, retries, error decoding). The
// bindings' containers and images packages are not used: they link containers/image,
// containers/storage, specgen and libpod/define (≈ 500 more packages) whose package
// initialisation alone keeps ≈ 15 MB of the binary resident in every agent process; see
// docs/agent.md. The wire formats are the libpod API's (podman ≥ 4.0).

// createSpec holds the fields of podman's SpecGenerator (pkg/specgen, JSON names as there)
// that the runtime sets; the service fills in the defaults of every other field.
type createSpec struct {
	Name               string               `json:"name,omitempty"`
	Image              string               `json:"image"`
	Entrypoint         []string             `json:"entrypoint,omitempty"`
	Command            []string             `json:"command,omitempty"`
	Env                map[string]string    `json:"env,omitempty"`
	Labels             map[string]string    `json:"labels,omitempty"`
	Stdin              bool                 `json:"stdin,omitempty"`
	NetNS              namespace            `json:"netns"`
	ReadOnlyFilesystem bool                 `json:"read_only_filesystem,omitempty"`
	CapDrop            []string             `json:"cap_drop,omitempty"`
	NoNewPrivileges    bool                 `json:"no_new_privileges,omitempty"`
	User               string               `json:"user,omitempty"`
	OCIRuntime         string               `json:"oci_runtime,omitempty"`
	Systemd            string               `json:"systemd,omitempty"`
	LogConfiguration   *logConfig           `json:"log_configuration,omitempty"`
	ResourceLimits     *spec.LinuxResources `json:"resource_limits,omitempty"`
	Rlimits            []spec.POSIXRlimit   `json:"r_limits,omitempty"`
	Mounts             []spec.Mount         `json:"mounts,omitempty"`
}

// namespace is specgen.Namespace.
type namespace struct {
	NSMode string `json:"nsmode,omitempty"`
	Value  string `json:"value,omitempty"`
}

// logConfig is specgen.LogConfig.
type logConfig struct {
	Driver string `json:"driver,omitempty"`
}

// containerState is the part of define.InspectContainerState the runtime reads.
type containerState struct {
	Status    string `json:"Status"`
	Running   bool   `json:"Running"`
	ExitCode  int32  `json:"ExitCode"`
	OOMKilled bool   `json:"OOMKilled"`
}

// call makes one request and decodes a JSON answer into out (nil: discard it). Error
// answers come back as the service's message (bindings' errorhandling.ErrorModel).
func call(ctx context.Context, c *bindings.Connection, method, endpoint string, params url.Values, body []byte, out any, pathValues ...string) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := c.DoRequest(ctx, r, method, endpoint, params, nil, pathValues...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return resp.Process(out)
}

// createContainer is POST /containers/create (bindings' containers.CreateWithSpec).
func createContainer(ctx context.Context, c *bindings.Connection, s *createSpec) (string, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	var resp struct {
		ID string `json:"Id"`
	}
	if err := call(ctx, c, http.MethodPost, "/containers/create", nil, body, &resp); err != nil {
		return "", err
	}
	if resp.ID == "" {
		return "", errors.New("create: no container id in the answer")
	}
	return resp.ID, nil
}

// startContainer is POST /containers/{id}/start.
func startContainer(ctx context.Context, c *bindings.Connection, id string) error {
	return call(ctx, c, http.MethodPost, "/containers/%s/start", nil, nil, nil, id)
}

// killContainer is POST /containers/{id}/kill?signal=KILL.
func killContainer(ctx context.Context, c *bindings.Connection, id string) error {
	return call(ctx, c, http.MethodPost, "/containers/%s/kill", url.Values{"signal": {"KILL"}}, nil, nil, id)
}

// removeContainer is DELETE /containers/{id}, forced, with its anonymous volumes; a
// container that no longer exists is not an error.
func removeContainer(ctx context.Context, c *bindings.Connection, id string) error {
	params := url.Values{"force": {"true"}, "volumes": {"true"}, "ignore": {"true"}}
	return call(ctx, c, http.MethodDelete, "/containers/%s", params, nil, nil, id)
}

// inspectState is GET /containers/{id}/json, decoding only the state.
func inspectState(ctx context.Context, c *bindings.Connection, id string) (containerState, error) {
	var data struct {
		State *containerState `json:"State"`
	}
	if err := call(ctx, c, http.MethodGet, "/containers/%s/json", url.Values{"size": {"false"}}, nil, &data, id); err != nil {
		return containerState{}, err
	}
	if data.State == nil {
		return containerState{}, errors.New("inspect: no state in the answer")
	}
	return *data.State, nil
}

// listByLabel is GET /containers/json?all=true&filters={"label":[label]}: the ids of every
// container, running or not, carrying label (key=value).
func listByLabel(ctx context.Context, c *bindings.Connection, label string) ([]string, error) {
	filters, err := json.Marshal(map[string][]string{"label": {label}})
	if err != nil {
		return nil, err
	}
	var list []struct {
		ID string `json:"Id"`
	}
	params := url.Values{"all": {"true"}, "filters": {string(filters)}}
	if err := call(ctx, c, http.MethodGet, "/containers/json", params, nil, &list); err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, ctr := range list {
		ids[i] = ctr.ID
	}
	return ids, nil
}

// imageExists is GET /images/{name}/exists (204 or 404).
func imageExists(ctx context.Context, c *bindings.Connection, name string) (bool, error) {
	resp, err := c.DoRequest(ctx, nil, http.MethodGet, "/images/%s/exists", nil, nil, name)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.IsSuccess(), nil
}

// pullImage is POST /images/pull?reference=name&quiet=true. The answer is a stream of JSON
// reports; errors are reported in it, not in the status code.
func pullImage(ctx context.Context, c *bindings.Connection, name string) error {
	params := url.Values{"reference": {name}, "quiet": {"true"}}
	resp, err := c.DoRequest(ctx, nil, http.MethodPost, "/images/pull", params, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !resp.IsSuccess() {
		return resp.Process(nil)
	}
	dec := json.NewDecoder(resp.Body)
	var errs []error
	for {
		var report struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&report); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			errs = append(errs, fmt.Errorf("pull answer: %w", err))
			break
		}
		if report.Error != "" {
			errs = append(errs, errors.New(report.Error))
		}
	}
	return errors.Join(errs...)
}

// attach is POST /containers/{id}/attach upgraded to a raw stream (as the bindings'
// containers.Attach, for containers without a terminal): once the service answers 101, ready
// gets true; stdin is copied into the stream (its end half-closes the connection, which the
// service passes on as the end of the container's stdin) while the multiplexed stdout and
// stderr frames are written to stdout and stderr. It returns when the service closes the
// stream (the container exited) or ctx ends.
//
// The upgrade runs on a private HTTP client bound to one new connection of the service
// (dialled as the shared one dials), so requests on the shared client are never disturbed.
// A service that has not answered the upgrade within handshake ends it with an error.
func attach(ctx context.Context, c *bindings.Connection, id string, stdin io.Reader, stdout, stderr io.Writer, ready chan<- bool, handshake time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	base, ok := c.Client.Transport.(*http.Transport)
	if !ok || base.DialContext == nil {
		return errors.New("attach: the connection has no dialer")
	}
	var (
		mu     sync.Mutex
		socket net.Conn
	)
	own := *c // same URI and scheme
	own.Client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := base.DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				if socket == nil {
					socket = conn
				}
				mu.Unlock()
			}
			return conn, err
		},
		DisableCompression: true,
		DisableKeepAlives:  true,
	}}
	params := url.Values{"stdout": {"true"}, "stderr": {"true"}}
	if stdin != nil {
		params.Set("stdin", "true")
	}
	headers := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"tcp"}}
	late := time.AfterFunc(handshake, cancel)
	resp, err := own.DoRequest(ctx, nil, http.MethodPost, "/containers/%s/attach", params, headers, id)
	if !late.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		return fmt.Errorf("attach: no answer within %s", handshake)
	}
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if err := resp.Process(nil); err != nil {
			return err
		}
		return fmt.Errorf("attach: answer %d, want %d", resp.StatusCode, http.StatusSwitchingProtocols)
	}
	stream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return errors.New("attach: the upgraded answer is not a stream")
	}
	defer stream.Close()
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	defer stop()
	if ready != nil {
		ready <- true
	}
	if stdin != nil {
		go func() {
			if _, err := io.Copy(stream, stdin); err != nil {
				return
			}
			mu.Lock()
			cw, ok := socket.(interface{ CloseWrite() error })
			mu.Unlock()
			if ok {
				_ = cw.CloseWrite()
			}
		}()
	}
	err = demux(stream, stdout, stderr)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// demux copies the frames of an attach stream to stdout and stderr until it ends. A frame is
// an 8-byte header (stream number, 3 bytes of padding, big-endian uint32 length) and the data;
// stream 3 carries an error from the service.
func demux(r io.Reader, stdout, stderr io.Writer) error {
	var header [8]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, header[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		fd := header[0]
		n := int(binary.BigEndian.Uint32(header[4:]))
		var w io.Writer
		switch fd {
		case 0, 1:
			w = stdout
		case 2:
			w = stderr
		case 3:
			msg := make([]byte, min(n, 64<<10))
			if _, err := io.ReadFull(r, msg); err != nil {
				return err
			}
			return fmt.Errorf("attach: from the service: %s", msg)
		default:
			return fmt.Errorf("attach: unknown stream %d in the frame header", fd)
		}
		for n > 0 {
			chunk := buf[:min(n, len(buf))]
			if _, err := io.ReadFull(r, chunk); err != nil {
				return err
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			n -= len(chunk)
		}
	}
}
