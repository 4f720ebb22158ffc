package rtcm_test

import (
	"bytes"
	"fmt"

	"github.com/depai/depai/plugins/ntrip/internal/rtcm"
)

func ExampleFrames() {
	x, y, z := rtcm.GeodeticToECEF(48.1173, 11.5166, 545.4)
	frame, _ := rtcm.Encode(rtcm.EncodeStation(rtcm.Station{ID: 2003, ITRFYear: 20, X: x, Y: y, Z: z}))
	stream := append([]byte("noise"), frame...)
	for f, err := range rtcm.Frames(bytes.NewReader(stream)) {
		if err != nil {
			fmt.Println("refused:", rtcm.KindOf(err))
			continue
		}
		s, _ := rtcm.DecodeStation(f.Payload)
		fmt.Printf("%d: station %d at %.4f,%.4f\n", f.Type, s.ID, s.Lat, s.Lon)
	}
	// Output:
	// refused: garbage
	// 1005: station 2003 at 48.1173,11.5166
}
