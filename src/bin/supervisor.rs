fn main() {
    std::process::exit(openshell_supervisor::supervisor::main());
}
