//! What is not ours goes to the kernel; what is ours but broken is dropped, with
//! the reason counted.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let arp = FrameBuilder::ethernet(GATEWAY_MAC, [0xff; 6])
        .ethertype(0x0806)
        .build(&[0u8; 28]);

    vec![
        Case {
            description: "ARP goes to the kernel",
            input: arp,
            port: INET,
            verdict: Verdict::ToKernel,
            check: |_, c| assert_eq!(c.happened(Event::ToKernel), 1),
        },
        Case {
            description: "traffic to an address that is no EIP goes to the kernel",
            input: tcp_to([203, 0, 113, 1], 64, b"ssh"),
            port: INET,
            verdict: Verdict::ToKernel,
            check: |_, _| {},
        },
        Case {
            description: "a truncated IPv4 header is dropped as truncated",
            input: tcp_to(EIP_1TO1, 64, b"")[..14 + 12].to_vec(),
            port: INET,
            verdict: Verdict::Drop(DropReason::Truncated),
            check: |_, _| {},
        },
        Case {
            description: "an IPv4 total length beyond the frame is a bad header",
            input: {
                let mut f = tcp_to(EIP_1TO1, 64, b"abc");
                f[16..18].copy_from_slice(&2000u16.to_be_bytes());
                f
            },
            port: INET,
            verdict: Verdict::Drop(DropReason::BadIpHeader),
            check: |_, _| {},
        },
        Case {
            description: "VXLAN to our VTEP cut inside the inner Ethernet header is truncated",
            input: {
                let f = encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI);
                let cut = 14 + 20 + 8 + 8 + 10;
                let mut f = f[..cut].to_vec();
                let ip_len = (cut - 14) as u16;
                let (mut ip, _) = etherparse::Ipv4Header::from_slice(&f[14..]).unwrap();
                ip.total_len = ip_len;
                ip.header_checksum = ip.calc_header_checksum();
                f[14..34].copy_from_slice(&ip.to_bytes());
                f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
                f
            },
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::Truncated),
            check: |_, _| {},
        },
    ]
}

#[test]
fn scenarios() {
    check_all(cases());
}
