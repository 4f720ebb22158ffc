package nmea_test

import (
	"fmt"
	"strings"

	"github.com/depai/depai/plugins/gnss/internal/nmea"
)

func ExampleScan() {
	log := nmea.Frame("GNGGA,120000.00,4807.0380,N,01131.0000,E,4,12,0.7,545.4,M,46.9,M,1.0,0031") +
		"$GNGGA,120001.00,4807.0380,N,01131.0000,E,4,12,0.7,545.4,M,46.9,M,1.0,0031*00\r\n"
	for s, err := range nmea.Scan(strings.NewReader(log)) {
		if err != nil {
			fmt.Println("refused:", nmea.KindOf(err))
			continue
		}
		g := s.(*nmea.GGA)
		fmt.Printf("%s quality %d at %.5f,%.5f\n", g.Talker(), g.Quality, g.Lat, g.Lon)
	}
	// Output:
	// GN quality 4 at 48.11730,11.51667
	// refused: checksum
}
