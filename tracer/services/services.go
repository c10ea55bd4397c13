// SPDX-License-Identifier: Apache-2.0

// Package services names ports: a built-in list of the ports people meet
// most, then /etc/services where present.
package services

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Name returns the service name of a TCP port, or "" when it has none.
func Name(port uint16) string { return Lookup("tcp", port) }

// Lookup returns the service name of port for proto ("tcp" or "udp").
func Lookup(proto string, port uint16) string {
	if proto == "udp" {
		if n, ok := udpNames[port]; ok {
			return n
		}
	} else if n, ok := names[port]; ok {
		return n
	}
	etcOnce.Do(func() { etc = parse("/etc/services") })
	return etc[key{proto, port}]
}

type key struct {
	proto string
	port  uint16
}

var (
	etcOnce sync.Once
	etc     map[key]string
)

// parse reads an /etc/services file: "name port/proto [aliases] [# comment]".
func parse(path string) map[key]string {
	m := map[key]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(fields[1], "/")
		port, err := strconv.ParseUint(portStr, 10, 16)
		if !ok || err != nil {
			continue
		}
		if k := (key{proto, uint16(port)}); m[k] == "" {
			m[k] = fields[0]
		}
	}
	return m
}

var udpNames = map[uint16]string{
	53: "domain", 67: "bootps", 68: "bootpc", 69: "tftp", 123: "ntp", 137: "netbios-ns",
	138: "netbios-dgm", 161: "snmp", 162: "snmp-trap", 443: "https", 500: "isakmp",
	514: "syslog", 1194: "openvpn", 1812: "radius", 1900: "ssdp", 4500: "ipsec-nat-t",
	4789: "vxlan", 5353: "mdns", 8472: "otv", 51820: "wireguard",
}

// Class says what kind of port this is: "well-known" (0-1023),
// "ephemeral" (inside this machine's ip_local_port_range, lo-hi, where
// connections take their local ports), "registered" (1024-49151), or
// "dynamic" (49152-65535, outside the ephemeral range).
func Class(port, lo, hi uint16) string {
	switch {
	case port < 1024:
		return "well-known"
	case port >= lo && port <= hi:
		return "ephemeral"
	case port <= 49151:
		return "registered"
	}
	return "dynamic"
}

// names follows IANA's service names for the ports people meet most.
var names = map[uint16]string{
	20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "domain",
	80: "http", 88: "kerberos", 110: "pop3", 111: "sunrpc", 119: "nntp",
	123: "ntp", 135: "msrpc", 139: "netbios-ssn", 143: "imap", 179: "bgp",
	389: "ldap", 443: "https", 445: "microsoft-ds", 465: "submissions",
	514: "shell", 515: "printer", 543: "klogin", 544: "kshell", 587: "submission",
	631: "ipp", 636: "ldaps", 853: "domain-s", 873: "rsync", 989: "ftps-data",
	990: "ftps", 993: "imaps", 995: "pop3s", 1080: "socks", 1194: "openvpn",
	1433: "ms-sql-s", 1521: "oracle", 1883: "mqtt", 2049: "nfs", 2181: "zookeeper",
	2375: "docker", 2376: "docker-s", 2379: "etcd-client", 2380: "etcd-server",
	3000: "hbci", 3128: "squid", 3306: "mysql", 3389: "ms-wbt-server",
	4222: "nats", 4369: "epmd", 5000: "commplex-main", 5044: "lumberjack",
	5353: "mdns", 5432: "postgresql", 5601: "kibana", 5672: "amqp",
	5900: "vnc", 5984: "couchdb", 6379: "redis", 6443: "sun-sr-https",
	6660: "ircu", 6667: "ircd", 7000: "afs3-fileserver", 8000: "irdmi",
	8008: "http-alt", 8080: "http-alt", 8081: "sunproxyadmin", 8443: "pcsync-https",
	8883: "secure-mqtt", 8888: "ddi-tcp-1", 9000: "cslistener", 9042: "cassandra",
	9090: "websm", 9092: "kafka", 9093: "copycat", 9100: "jetdirect",
	9200: "elasticsearch", 9300: "vrace", 9418: "git", 10250: "kubelet",
	11211: "memcache", 15672: "rabbitmq-mgmt", 25565: "minecraft",
	27017: "mongodb", 50051: "grpc",
}
