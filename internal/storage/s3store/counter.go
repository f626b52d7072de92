package s3store

import (
	"net/http"
	"sync/atomic"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// counter is the HTTP transport that counts every request sent, retries included, by
// kind: PUT (PutObject, UploadPart, and the POSTs that create and complete a multipart
// upload: S3 bills them alike), GET (GetObject), LIST (ListObjectsV2), DELETE
// (DeleteObject, AbortMultipartUpload and each DeleteObjects batch), HEAD (HeadObject,
// HeadBucket), Other (GetBucketLocation and anything else).
type counter struct {
	next                                 http.RoundTripper
	put, get, list, del, head, otherReqs atomic.Int64
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	switch req.Method {
	case http.MethodPut:
		c.put.Add(1)
	case http.MethodPost:
		switch {
		case q.Has("delete"):
			c.del.Add(1)
		case q.Has("uploads"), q.Has("uploadId"):
			c.put.Add(1)
		default:
			c.otherReqs.Add(1)
		}
	case http.MethodGet:
		switch {
		case q.Has("list-type"), q.Has("uploads"), q.Has("uploadId"):
			c.list.Add(1)
		case q.Has("location"):
			c.otherReqs.Add(1)
		default:
			c.get.Add(1)
		}
	case http.MethodDelete:
		c.del.Add(1)
	case http.MethodHead:
		c.head.Add(1)
	default:
		c.otherReqs.Add(1)
	}
	return c.next.RoundTrip(req)
}

func (c *counter) counts() storage.RequestCounts {
	return storage.RequestCounts{
		Put: c.put.Load(), Get: c.get.Load(), List: c.list.Load(),
		Delete: c.del.Load(), Head: c.head.Load(), Other: c.otherReqs.Load(),
	}
}
