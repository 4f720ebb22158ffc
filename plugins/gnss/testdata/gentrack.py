#!/usr/bin/env python3
"""Writes track.nmea: 60 one-second epochs of a receiver moving east at 1 m/s
(2 knots ~ 1 m/s) whose fix improves none -> GPS -> DGPS -> RTK float -> RTK
fixed, with GGA, RMC, GSA, GSV (8 satellites, so gpsd reports SKY), GST and
VTG, correct checksums, and four bad lines
the plugin must count and never believe. Run it from this directory."""
import math

def f(b):
    c = 0
    for ch in b:
        c ^= ord(ch)
    return "$%s*%02X\r\n" % (b, c)

def dm(x, w):
    a = abs(x); d = int(a); m = (a - d) * 60
    return "%0*d%07.4f" % (w, d, m)

lat0, lon0 = 48.1173, 11.5166
out = []
for i in range(60):
    t = "1200%02d.00" % i
    q = 0 if i < 5 else 1 if i < 15 else 2 if i < 25 else 5 if i < 40 else 4
    lon = lon0 + i * 1.0 / (111320 * math.cos(math.radians(lat0)))
    la = dm(lat0, 2); lo = dm(lon, 3)
    sigma = {1: 2.5, 2: 0.8, 5: 0.3, 4: 0.02}.get(q, 0)
    if q == 0:
        out.append(f("GNGGA,%s,,,,,0,00,99.9,,M,,M,," % t))
        out.append(f("GNRMC,%s,V,,,,,,,011226,,,N" % t))
        out.append(f("GNGSA,A,1,,,,,,,,,,,,,99.9,99.9,99.9"))
        continue
    age = "1.0,0031" if q in (2, 4, 5) else ","
    mode = {1: "A", 2: "D", 5: "F", 4: "R"}[q]
    out.append(f("GNGGA,%s,%s,N,%s,E,%d,12,0.7,545.4,M,46.9,M,%s" % (t, la, lo, q, age)))
    out.append(f("GNRMC,%s,A,%s,N,%s,E,1.944,90.0,011226,,,%s" % (t, la, lo, mode)))
    out.append(f("GNGSA,A,3,04,05,09,12,24,25,29,31,,,,,1.2,0.7,1.0"))
    out.append(f("GPGSV,2,1,08,04,45,120,42,05,30,060,40,09,60,200,45,12,20,300,38"))
    out.append(f("GPGSV,2,2,08,24,50,150,44,25,15,030,35,29,70,250,47,31,25,330,39"))
    out.append(f("GNGST,%s,%.3f,%.3f,%.3f,0.0,%.3f,%.3f,%.3f" % (t, sigma, sigma, sigma, sigma * 0.8, sigma * 0.6, sigma * 1.5)))
    out.append(f("GNVTG,90.0,T,,M,1.944,N,3.600,K,%s" % mode))
    if i == 20:  # bad checksum on an RTK fixed GGA one degree north: must not be believed
        bad = f("GNGGA,%s,%s,N,%s,E,4,12,0.7,545.4,M,46.9,M,," % (t, dm(lat0 + 1, 2), lo))
        out.append(bad[:-4] + "00\r\n")
    if i == 30:  # truncated
        out.append(f("GNGGA,%s,%s,N,%s,E,4,12,0.7,545.4,M,46.9,M,," % (t, la, lo))[:30] + "\r\n")
    if i == 45:  # garbage
        out.append("$GNGGA,garbage\x01\x02 line*7Z\r\n")
    if i == 50:  # a valid checksum over a latitude out of range
        out.append(f("GNGGA,%s,9507.0380,N,%s,E,4,12,0.7,545.4,M,46.9,M,," % (t, lo)))
open("track.nmea", "w", newline="").write("".join(out))
