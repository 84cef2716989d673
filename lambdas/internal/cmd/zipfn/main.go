// Command zipfn packs a Lambda bootstrap binary into a deployment zip, so
// `make lambdas` needs nothing but Go. The entry is named "bootstrap" with
// mode 0755 (provided.al2023 executes it) and a fixed timestamp, so the same
// binary always gives the same zip and SAM sees no spurious change.
//
//	zipfn -o dist/heartbeat-arm64.zip build/arm64/heartbeat/bootstrap
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	out := flag.String("o", "", "zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: zipfn -o OUT.zip BOOTSTRAP")
		os.Exit(2)
	}
	if err := pack(*out, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "zipfn:", err)
		os.Exit(1)
	}
}

func pack(out, bin string) (err error) {
	in, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("open binary: %w", err)
	}
	defer in.Close()
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create zip: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zw := zip.NewWriter(f)
	hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("add bootstrap: %w", err)
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		return fmt.Errorf("finish zip: %w", err)
	}
	return os.Rename(tmp, out)
}
