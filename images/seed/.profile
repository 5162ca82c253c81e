# Seeded into the workspace (/sandbox) on its first boot by the supervisor; yours to change.
export PATH=/bin:/usr/bin
export PS1='sandbox:\w\$ '
