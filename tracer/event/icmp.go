// SPDX-License-Identifier: Apache-2.0

package event

import "strconv"

// ICMPName names the connect_fail's ICMP error (ICMPv6 when it came from
// an IPv6 address): "host unreachable", "port unreachable",
// "communication administratively prohibited"; "type T code C" for one
// without a name here.
func (e *Event) ICMPName() string {
	names := icmp6Names
	if e.ICMPFrom.Is4() {
		names = icmp4Names
	}
	if name, ok := names[[2]uint8{e.ICMPType, e.ICMPCode}]; ok {
		return name
	}
	return "type " + strconv.Itoa(int(e.ICMPType)) + " code " + strconv.Itoa(int(e.ICMPCode))
}

var icmp4Names = map[[2]uint8]string{
	{3, 0}: "network unreachable", {3, 1}: "host unreachable", {3, 2}: "protocol unreachable",
	{3, 3}: "port unreachable", {3, 4}: "fragmentation needed", {3, 6}: "destination network unknown",
	{3, 7}: "destination host unknown", {3, 9}: "network administratively prohibited",
	{3, 10}: "host administratively prohibited", {3, 13}: "communication administratively prohibited",
	{11, 0}: "time to live exceeded", {12, 0}: "parameter problem",
}

var icmp6Names = map[[2]uint8]string{
	{1, 0}: "no route to destination", {1, 1}: "communication administratively prohibited",
	{1, 3}: "address unreachable", {1, 4}: "port unreachable", {1, 5}: "source address failed policy",
	{1, 6}: "reject route to destination", {2, 0}: "packet too big", {3, 0}: "hop limit exceeded",
	{4, 0}: "parameter problem",
}
