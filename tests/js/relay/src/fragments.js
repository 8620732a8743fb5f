// Fragments a Relay app writes against blogql: paginated, refetchable
// connections on `User.posts` and `Post.comments` (both directions), compiled
// by relay-compiler to prove the schema meets Relay's requirements.
import { graphql } from "react-relay";

export const userPosts = graphql`
  fragment fragmentsUserPosts_user on User
  @refetchable(queryName: "fragmentsUserPostsPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
    name
    posts(first: $count, after: $cursor) @connection(key: "fragmentsUserPosts_posts") {
      totalCount
      edges {
        node {
          id
          title
          commentCount
        }
      }
    }
  }
`;

export const postComments = graphql`
  fragment fragmentsPostComments_post on Post
  @refetchable(queryName: "fragmentsPostCommentsPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
    title
    comments(last: $count, before: $cursor) @connection(key: "fragmentsPostComments_comments") {
      edges {
        node {
          id
          body
          author {
            name
          }
        }
      }
    }
  }
`;

export const deletePost = graphql`
  mutation fragmentsDeletePostMutation($id: ID!, $connections: [ID!]!) {
    deletePost(id: $id) {
      deletedPostId @deleteEdge(connections: $connections)
      author {
        id
        postCount
      }
    }
  }
`;
