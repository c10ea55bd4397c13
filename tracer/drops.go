// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// dropReasonNames maps the kernel's enum skb_drop_reason to its names,
// without SKB_DROP_REASON_: the values differ between kernel versions, so
// they are read from this kernel's BTF.
var dropReasonNames = sync.OnceValue(func() map[uint32]string {
	names := map[uint32]string{}
	var enum *btf.Enum
	spec, err := btf.LoadKernelSpec()
	if err != nil || spec.TypeByName("skb_drop_reason", &enum) != nil {
		return names
	}
	for _, v := range enum.Values {
		names[uint32(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
	}
	return names
})

// DropReasonName is the name of the kernel's drop reason n
// ("NETFILTER_DROP"), or "reason N" when this kernel does not name it.
func DropReasonName(n uint32) string {
	if name, ok := dropReasonNames()[n]; ok {
		return name
	}
	return "reason " + strconv.FormatUint(uint64(n), 10)
}
