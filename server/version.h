/* version.h: cetcd's own version and the etcd API level it serves (what /version reports). */
#ifndef CETCD_VERSION_H
#define CETCD_VERSION_H

#define CETCD_VERSION "0.1.0"
#define CETCD_ETCD_API_VERSION "3.5.0"
#define CETCD_ETCD_CLUSTER_VERSION "3.5.0"

#endif
