package ntrip_test

import (
	"fmt"
	"strings"

	"github.com/depai/depai/plugins/ntrip/internal/ntrip"
)

func ExampleParseSourcetable() {
	t, err := ntrip.ParseSourcetable(strings.NewReader(
		"STR;AUTO;Nearest;RTCM 3.2;1005(10),1074(1);2;GPS+GLO;GEODNET;DEU;48.12;11.52;1;1;sNTRIP;none;B;N;9600;\r\nENDSOURCETABLE\r\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	m := t.Mounts[0]
	fmt.Println(m.Name, m.Format, m.NavSystems, "needs GGA:", m.NeedsGGA)
	// Output: AUTO RTCM 3.2 [GPS GLO] needs GGA: true
}
