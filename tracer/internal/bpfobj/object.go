// SPDX-License-Identifier: Apache-2.0

package bpfobj

import (
	"crypto/sha256"
	"encoding/hex"
)

// ObjectSHA256 is the SHA-256, in hex, of the BPF object this binary
// embeds (bpf2go's, for its architecture): which BPF code it runs.
func ObjectSHA256() string {
	sum := sha256.Sum256(_ConntraceBytes)
	return hex.EncodeToString(sum[:])
}
