fn main() {
    println!("voipbridge: under construction");
}
